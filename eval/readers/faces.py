"""Facial-expression datasets: FER2013 and FER+ (docs/formats.md §3, §4)."""
from __future__ import annotations

import csv
import itertools
import sys
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from focusclip.core.errors import fail
from focusclip.eval.readers.base import FER_SIDE, DatasetSplit, ImageRef, MissingData, Sample, find_dir

# FER2013 label codes 0..6 (torchvision, Kaggle README)
FER_CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
# Kaggle class-folder names → the CSV's class; alphabetical ImageFolder order would swap
# neutral/sad/surprise, so folders are mapped by name.
FER_FOLDERS = {"angry": "Angry", "disgust": "Disgust", "fear": "Fear", "happy": "Happy",
               "sad": "Sad", "surprise": "Surprise", "neutral": "Neutral"}
FER_TEST_USAGES = ("PublicTest", "PrivateTest")
# FER+ vote columns, in fer2013new.csv order; the first 8 are the emotion classes
FERPLUS_VOTES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                 "contempt", "unknown", "NF"]
FERPLUS_CLASSES = FERPLUS_VOTES[:8]
IMAGE_EXTS = (".jpg", ".jpeg", ".png")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a pixels cell is ~8 KB, above csv's default


# ---------------------------------------------------------------------------------------------
# FER2013: fer2013.csv > icml_face_data.csv > test/<class>/ folders
def read_fer2013(root: Path, split: str = "test") -> DatasetSplit:
    base = root / "fer2013"
    csv_path = fer2013_csv(base)
    if csv_path is not None:
        return _fer_from_csv(csv_path, split)
    folder = find_dir(base, split, split.capitalize())
    if folder is not None and folder.is_dir():
        return _fer_from_folders(folder, split)
    raise MissingData(base / "fer2013.csv", "or icml_face_data.csv, or test/<class>/ folders "
                      "(test.csv alone has no labels)")


def fer2013_csv(base: Path) -> Path | None:
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if (base / name).is_file():
            return base / name
    return None


def iter_fer2013(path: Path) -> Iterator[dict]:
    """Rows of fer2013.csv or icml_face_data.csv as dicts keyed by the *stripped* header names
    (icml_face_data.csv has `emotion, Usage, pixels` with leading spaces and another order).
    Streamed: the whole file as strings would take ~300 MB."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not {"emotion", "pixels", "Usage"} <= set(header):
            raise fail(f"not a FER2013 CSV (header {header})", str(path),
                       "use fer2013.csv or icml_face_data.csv from the Kaggle release")
        for row in reader:
            yield dict(zip(header, (c.strip() for c in row)))


def fer_pixels(text: str) -> bytes | None:
    """'70 80 82 …' (2304 values) → 48×48 uint8 bytes; None when malformed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # raised on a bad token; size check below
        arr = np.fromstring(text, dtype=np.int32, sep=" ")
    if arr.size != FER_SIDE * FER_SIDE or arr.min() < 0 or arr.max() > 255:
        return None
    return arr.astype(np.uint8).tobytes()


def _fer_from_csv(path: Path, split: str) -> DatasetSplit:
    usages = FER_TEST_USAGES if split == "test" else ("Training",)
    out = DatasetSplit("fer2013", split, list(FER_CLASSES), [], source=str(path))
    for i, row in enumerate(iter_fer2013(path)):
        if row.get("Usage") not in usages:
            continue
        code = row.get("emotion", "")
        if not code.isdigit() or int(code) >= len(FER_CLASSES):
            out.skip("emotion code not 0-6")
            continue
        pixels = fer_pixels(row.get("pixels", ""))
        if pixels is None:
            out.skip("pixels not 2304 values in 0-255")
            continue
        out.samples.append(Sample(ImageRef(pixels=pixels), (FER_CLASSES[int(code)],), f"row {i + 2}"))
    return out


def _fer_from_folders(folder: Path, split: str) -> DatasetSplit:
    out = DatasetSplit("fer2013", split, list(FER_CLASSES), [], source=str(folder))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        images = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        label = FER_FOLDERS.get(sub.name.lower())
        if label is None:
            out.skip(f"unknown class folder {sub.name}", len(images))
            continue
        out.samples += [Sample(ImageRef(path=str(p)), (label,), f"{sub.name}/{p.name}") for p in images]
    return out


# ---------------------------------------------------------------------------------------------
# FER+: fer2013new.csv joined by row position to fer2013.csv, or FER2013Test/ PNGs + label.csv
def read_ferplus(root: Path, split: str = "test") -> DatasetSplit:
    base = root / "ferplus"
    new_csv = base / "fer2013new.csv"
    pixels_csv = fer2013_csv(root / "fer2013")
    if new_csv.is_file() and pixels_csv is not None:
        return _ferplus_from_csv(new_csv, pixels_csv, split)
    folder = base / {"test": "FER2013Test", "val": "FER2013Valid", "train": "FER2013Train"}[split]
    if (folder / "label.csv").is_file():
        return _ferplus_from_pngs(folder, split)
    raise MissingData(new_csv, f"with {root / 'fer2013' / 'fer2013.csv'}, or {folder / 'label.csv'} with PNGs")


def majority_label(votes: list[float]) -> tuple[int | None, str]:
    """FER+ majority vote over the 10 columns → (emotion index 0..7, "") or (None, reason).
    The label is the column with the most votes; rows are dropped when nobody voted, when the top
    is shared by two columns (a tie has no majority label), or when `unknown`/`NF` wins
    (FERPlus ferplus.py drops those too)."""
    v = np.asarray(votes, dtype=float)
    if v.size != len(FERPLUS_VOTES) or not np.isfinite(v).all() or v.sum() <= 0:
        return None, "no votes"
    top = np.flatnonzero(v == v.max())
    if len(top) > 1:
        return None, "tied vote"
    if top[0] >= len(FERPLUS_CLASSES):
        return None, f"majority {FERPLUS_VOTES[top[0]]}"
    return int(top[0]), ""


def _ferplus_from_csv(new_csv: Path, pixels_csv: Path, split: str) -> DatasetSplit:
    """Join on row position, never on `Image name`: the names skip indices (docs/formats.md §4)."""
    usage = {"test": "PrivateTest", "val": "PublicTest", "train": "Training"}[split]
    out = DatasetSplit("ferplus", split, list(FERPLUS_CLASSES), [], source=str(new_csv))
    with open(new_csv, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:2] != ["Usage", "Image name"] or header[2:] != FERPLUS_VOTES:
            raise fail(f"unexpected header {header}", str(new_csv), "use fer2013new.csv of microsoft/FERPlus")
        for i, (row, px) in enumerate(itertools.zip_longest(reader, iter_fer2013(pixels_csv))):
            if row is None or px is None:
                raise fail(f"row count differs from {pixels_csv} (they are joined by row position)",
                           str(new_csv), "use the fer2013.csv that fer2013new.csv was made from")
            row = [c.strip() for c in row]
            if not row or row[0] != usage:
                continue
            if px.get("Usage") != usage:
                out.skip("Usage differs from fer2013.csv at this row")
            elif len(row) != 2 + len(FERPLUS_VOTES):
                out.skip("row without 10 vote columns")
            elif not row[1]:
                out.skip("no image name (FER+ made no image)")
            else:
                _add_ferplus(out, row[2:], lambda: ImageRef(pixels=fer_pixels(px.get("pixels", ""))), row[1])
    return out


def _add_ferplus(out: DatasetSplit, vote_cells: list[str], make_ref, key: str) -> None:
    """Append the sample when its votes give a majority label; count the reason otherwise."""
    try:
        votes = [float(c) for c in vote_cells]
    except ValueError:
        out.skip("votes not numbers")
        return
    label, reason = majority_label(votes)
    if label is None:
        out.skip(reason)
        return
    ref = make_ref()
    if ref.path is None and ref.pixels is None:
        out.skip("pixels not 2304 values in 0-255")
        return
    out.samples.append(Sample(ref, (FERPLUS_CLASSES[label],), key))


def _ferplus_from_pngs(folder: Path, split: str) -> DatasetSplit:
    """`label.csv` comes in two dialects, both without a header: the shipped one
    `name,"(0, 0, 48, 48)",<10 votes>` and the unmerged-PR one `name,<10 votes>`."""
    out = DatasetSplit("ferplus", split, list(FERPLUS_CLASSES), [], source=str(folder / "label.csv"))
    with open(folder / "label.csv", newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            row = [c.strip() for c in row]
            if not row or not row[0]:
                continue
            if len(row) == 12:
                votes = row[2:]         # shipped dialect: name, box, votes
            elif len(row) == 11:
                votes = row[1:]         # PR dialect: name, votes
            else:
                out.skip("label.csv row with neither 11 nor 12 columns")
                continue
            if row[0].lower() in ("image name", "name"):
                continue                # a header line, in case one was added
            image = folder / row[0]
            if not image.is_file():
                out.skip("image missing")
                continue
            _add_ferplus(out, votes, lambda: ImageRef(path=str(image)), row[0])
    return out
