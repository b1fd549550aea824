"""Age and race datasets: FairFace, UTKFace and LAGENDA (docs/formats.md §5, §6, §7)."""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Sequence

from focusclip.core.errors import fail
from focusclip.eval.readers.base import DatasetSplit, ImageRef, MissingData, Sample, find_dir

# FairFace label values, as the CSV spells them (note "more than 70" and "Latino_Hispanic")
FAIRFACE_AGES = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
FAIRFACE_RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian",
                  "Middle Eastern"]
# UTKFace race codes 0..4 (official README)
UTK_RACES = ["White", "Black", "Asian", "Indian", "Others"]
# [age]_[gender]_[race]_[date&time 17 digits]; anything else (e.g. the three files without a race
# field) is malformed
_UTK_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d{17})")
LAGENDA_COLUMNS = ("img_name", "age", "face_x0", "face_y0", "face_x1", "face_y1",
                   "person_x0", "person_y0", "person_x1", "person_y1")

AgeBins = Sequence[tuple[str, float | None]]  # (class name, inclusive upper age; None = no bound)


def age_group(age: float, bins: AgeBins) -> str:
    """The first bin whose inclusive upper bound holds `age` (docs/design.md §5 age groups)."""
    for name, upper in bins:
        if upper is None or age <= upper:
            return name
    raise ValueError(f"age {age} above every bin")


# ---------------------------------------------------------------------------------------------
# FairFace: fairface_label_val.csv (file,age,gender,race,service_test) + margin-0.25 images
def read_fairface(root: Path, split: str = "val", target: str = "age") -> DatasetSplit:
    base = root / "fairface"
    labels = base / f"fairface_label_{split}.csv"
    images = base / "fairface-img-margin025-trainval"
    for needed in (labels, images / split):
        if not needed.exists():
            raise MissingData(needed)
    classes = {"age": FAIRFACE_AGES, "race": FAIRFACE_RACES}[target]
    known = set(classes)
    out = DatasetSplit("fairface", split, list(classes), [], source=str(labels))
    for row in _dict_rows(labels, ("file", target)):
        value = row[target]
        if value not in known:
            out.skip(f"unknown {target} value")
            continue
        image = images / row["file"]  # `file` is relative to the image folder: val/1.jpg
        if not image.is_file():
            out.skip("image missing")
            continue
        out.samples.append(Sample(ImageRef(path=str(image)), (value,), row["file"]))
    return out


def _dict_rows(path: Path, needed: Sequence[str]) -> list[dict]:
    """CSV rows keyed by stripped column names; a user error naming the missing columns."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [(h or "").strip() for h in reader.fieldnames or []]
        missing = [c for c in needed if c not in header]
        if missing:
            raise fail(f"missing columns {missing} (header {header})", str(path),
                       "use the dataset's original CSV")
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


# ---------------------------------------------------------------------------------------------
# UTKFace: labels in the file names of UTKFace/*.jpg.chip.jpg
def read_utkface(root: Path, target: str = "age", age_bins: AgeBins = ()) -> DatasetSplit:
    folder = find_dir(root / "utkface", "UTKFace", "utkface", "crop_part1")
    if folder is None:
        raise MissingData(root / "utkface" / "UTKFace")
    # every file counts: a name without ".jpg" (the HF mirror's `…357jpg`) is malformed too
    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    if not files:
        raise MissingData(folder / "*.jpg.chip.jpg")
    classes = [name for name, _ in age_bins] if target == "age" else list(UTK_RACES)
    out = DatasetSplit("utkface", "all", classes, [], source=str(folder))
    for p in files:
        m = _UTK_NAME.match(p.name)
        if not m or not p.name.lower().endswith(".jpg"):
            out.skip("malformed file name")
            continue
        age, race = int(m[1]), int(m[3])
        label = age_group(age, age_bins) if target == "age" else UTK_RACES[race]
        out.samples.append(Sample(ImageRef(path=str(p)), (label,), p.name))
    return out


# ---------------------------------------------------------------------------------------------
# LAGENDA: lagenda_annotation.csv (read by column name; -1 = missing) + lag_benchmark/ images
def read_lagenda(root: Path, crop: str = "person", age_bins: AgeBins = ()) -> DatasetSplit:
    base = root / "lagenda"
    labels = base / "lagenda_annotation.csv"
    if not labels.is_file():
        raise MissingData(labels)
    out = DatasetSplit("lagenda", "all", [name for name, _ in age_bins], [], source=str(labels))
    exists: dict[str, str] = {}
    for row in _dict_rows(labels, LAGENDA_COLUMNS):
        age = _lagenda_age(row["age"])
        if age is None:
            out.skip("age missing (-1)")
            continue
        box = _lagenda_box(row, crop)
        if box is None:
            out.skip(f"no {crop} box (-1)")
            continue
        path = _lagenda_image(base, row["img_name"], exists)
        if path is None:
            out.skip("image missing")
            continue
        out.samples.append(Sample(ImageRef(path=path, box=box), (age_group(age, age_bins),),
                                  row["img_name"]))
    return out


def _lagenda_age(cell: str) -> float | None:
    """A number, a `start;end` range (mean), or -1/empty for missing."""
    try:
        parts = [float(p) for p in cell.split(";")]
    except ValueError:
        return None
    age = sum(parts) / len(parts)
    return None if age < 0 else age


def _lagenda_box(row: dict, crop: str) -> tuple[float, float, float, float] | None:
    try:
        box = tuple(float(row[f"{crop}_{c}"]) for c in ("x0", "y0", "x1", "y1"))
    except ValueError:
        return None
    return None if all(v == -1 for v in box) else box


def _lagenda_image(base: Path, name: str, exists: dict[str, str]) -> str | None:
    """`img_name` is relative to the dataset folder (`lag_benchmark/<hex>.jpg`); a bare name is
    looked up in lag_benchmark/. One stat per distinct image (several rows share an image)."""
    if name not in exists:
        cands = [base / name, base / "lag_benchmark" / Path(name).name]
        exists[name] = next((str(c) for c in cands if c.is_file()), "")
    return exists[name] or None
