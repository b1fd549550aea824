"""Readers of the eight evaluation datasets in their official layouts under `--data-root`.

`read_for_task(task, data_root)` runs the reader a task file names and returns a `DatasetSplit`;
it raises `MissingData(expected_path)` when the dataset is not there. A user's own task reads an
ImageFolder or a CSV of `path,label` (readers.custom).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from focusclip.eval.readers.actions import read_kinetics, read_stanford40
from focusclip.eval.readers.base import DatasetSplit, ImageRef, MissingData, Sample, load_image
from focusclip.eval.readers.custom import read_csv_task, read_imagefolder
from focusclip.eval.readers.emotic import read_emotic_split
from focusclip.eval.readers.faces import read_fer2013, read_ferplus
from focusclip.eval.readers.people import read_fairface, read_lagenda, read_utkface

READERS: dict[str, Callable[..., DatasetSplit]] = {
    "stanford40": read_stanford40,
    "kinetics400": read_kinetics,
    "emotic": read_emotic_split,
    "fer2013": read_fer2013,
    "ferplus": read_ferplus,
    "fairface": read_fairface,
    "utkface": read_utkface,
    "lagenda": read_lagenda,
    # a user's own task (--task-file): paths in the reader's arguments, not under --data-root
    "imagefolder": read_imagefolder,
    "csv": read_csv_task,
}
OWN_READERS = {"imagefolder": ("root",), "csv": ("path", "images")}   # reader → its path arguments
_TAKES_AGE_BINS = {"utkface", "lagenda"}


def read_for_task(task, data_root: str | Path | None) -> DatasetSplit:
    """Run the reader named in the task file with its arguments (and the task's age groups)."""
    args = dict(task.reader)
    name = args.pop("name")
    if name in _TAKES_AGE_BINS:
        args["age_bins"] = task.age_bins
    return READERS[name](Path(data_root) if data_root is not None else None, **args)


__all__ = ["OWN_READERS", "READERS", "DatasetSplit", "ImageRef", "MissingData", "Sample", "load_image", "read_for_task"]
