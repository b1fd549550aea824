"""Readers of a user's own task (`focus-eval --task-file FILE`, docs/eval.md "Your own task"): an
ImageFolder (`ROOT/<class>/<image>`) or a CSV of `path,label`. The task file's paths are made absolute
against its folder when it is loaded (eval.tasks.load_task_file), so `data_root` is not used here.
"""
from __future__ import annotations

import csv
from pathlib import Path

from focusclip.core.errors import fail
from focusclip.eval.readers.base import DatasetSplit, ImageRef, MissingData, Sample

# what PIL opens and people keep images in; other files in an ImageFolder are counted, not read
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def read_imagefolder(data_root: Path | None, root: str) -> DatasetSplit:
    """`root/<class folder>/<image>` (any depth below the class folder); the folder's name is the label."""
    base = Path(root)
    if not base.is_dir():
        raise MissingData(base)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    out = DatasetSplit("imagefolder", "all", classes, [], source=str(base))
    for name in classes:
        for p in sorted((base / name).rglob("*")):
            if p.is_dir() or any(part.startswith(".") for part in p.relative_to(base).parts):
                continue
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                out.skip("not an image file")
                continue
            out.samples.append(Sample(ImageRef(path=str(p)), (name,), str(p.relative_to(base))))
    if not out.samples and not out.skipped:
        raise MissingData(base / "<class>" / "<image>")
    return out


def read_csv_task(data_root: Path | None, path: str, images: str | None = None, separator: str = "") -> DatasetSplit:
    """A CSV with a header holding `path` and `label` columns (others are ignored). Image paths are
    relative to `images` (default: the CSV's folder) unless absolute. `separator` splits a label cell
    into several labels (a multi-label task); empty: one label per row."""
    file = Path(path)
    if not file.is_file():
        raise MissingData(file)
    base = Path(images) if images else file.parent
    out = DatasetSplit("csv", "all", [], [], source=str(file))
    with open(file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("path", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise fail(f"the header has no {' or '.join(missing)} column (it has {reader.fieldnames})", str(file),
                       "write a first line `path,label`, one image and its class per row")
        for i, row in enumerate(reader, start=2):        # line numbers as an editor shows them
            rel, cell = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            labels = tuple(x.strip() for x in (cell.split(separator) if separator else [cell]) if x.strip())
            if not rel:
                out.skip("no image path")
                continue
            image = base / rel
            if not image.is_file():
                out.skip("image missing")
                continue
            out.samples.append(Sample(ImageRef(path=str(image)), labels, f"{file.name}:{i}"))
    return out
