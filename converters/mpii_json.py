"""Read HRNet/mmpose MPII JSON lists (`train.json`, `valid.json`, `mpii_val.json`, …) into records.

Each list entry is one person: `image`, `joints` (16 × [x, y]), `joints_vis` (16 flags), `center`,
`scale` (docs/formats.md §1.7). The file keeps the raw 1-based `.mat` values, so coordinates get `- 1`.
`joints_vis` means *labelled*, not visible: labelled joints become visibility 2 and are counted as
"visibility unknown". Entries of one image are grouped into one record, people numbered in file
order. The JSON carries no train/test flag: the official test files (`test.json`, `mpii_test.json`)
give `test`; every other file gives `train`, and `val` is assigned later (`data.splits.assign_val`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from focusclip.core.errors import fail
from focusclip.core.io import read_json
from focusclip.core.report import Report
from focusclip.data.records import Annotation, Person
from focusclip.data.skeleton import NUM_JOINTS

FIX = "pass an HRNet/mmpose MPII JSON list of person records (image, joints, joints_vis, center, scale)"
TEST_FILES = ("test.json", "mpii_test.json")
VAL_FILES = ("valid.json", "mpii_val.json")


def read_mpii_json(path: str | os.PathLike, report: Report | None = None) -> list[Annotation]:
    """One record per image of an HRNet/mmpose JSON list, in order of first appearance."""
    report = report if report is not None else Report("convert")
    entries = read_person_entries(path)
    split = "test" if Path(path).name in TEST_FILES else "train"
    by_image: dict[str, Annotation] = {}
    unknown = 0
    for e in entries:
        rec = by_image.setdefault(e["image"], Annotation(image=e["image"], split=split))
        person = _person(e, len(rec.people))
        unknown += person.num_labelled
        rec.people.append(person)
    report.count("joints_visibility_unknown", unknown)
    for rec in by_image.values():
        if split == "train" and not any(p.num_labelled for p in rec.people):
            report.count("train_images_without_keypoints")
    return list(by_image.values())


def read_person_entries(path: str | os.PathLike) -> list[dict]:
    """The validated entries of a JSON list; anything else is a user error naming the first bad entry."""
    data = read_json(path)
    if not isinstance(data, list):
        raise fail(f"is a JSON {type(data).__name__}, not a list of person records", str(path), FIX)
    if not data:
        raise fail("is an empty JSON list", str(path), FIX)
    for k, e in enumerate(data):
        why = _entry_problem(e)
        if why:
            raise fail(f"entry {k} is not an MPII person record: {why}", str(path), FIX)
    return data


def read_val_images(split_dir: str | os.PathLike) -> set[str]:
    """Image names of the HRNet/mmpose validation split (`valid.json` and/or `mpii_val.json` in `split_dir`)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise fail("split-json folder not found", str(split_dir), f"pass a folder holding {' or '.join(VAL_FILES)}")
    found = [split_dir / n for n in VAL_FILES if (split_dir / n).is_file()]
    if not found:
        raise fail(f"holds neither {' nor '.join(VAL_FILES)}", str(split_dir),
                   "pass the HRNet annot/ folder or the mmpose annotations/ folder")
    return {e["image"] for p in found for e in read_person_entries(p)}


def _entry_problem(e) -> str | None:
    if not isinstance(e, dict):
        return f"a JSON {type(e).__name__}, not an object"
    if not isinstance(e.get("image"), str) or not e["image"].strip():
        return "no 'image' file name"
    if "joints" not in e and "joints_vis" not in e:
        return None  # test-file entries carry only image, center and scale
    joints, vis = e.get("joints"), e.get("joints_vis")
    if not isinstance(joints, list) or len(joints) != NUM_JOINTS:
        return f"'joints' must hold {NUM_JOINTS} [x, y] pairs"
    if not isinstance(vis, list) or len(vis) != NUM_JOINTS or not all(_is_number(v) for v in vis):
        return f"'joints_vis' must hold {NUM_JOINTS} numbers"
    for j, (p, v) in enumerate(zip(joints, vis)):
        if not isinstance(p, list) or len(p) < 2 or not all(_is_number(c) for c in p[:2]):
            return f"joint {j} is not an [x, y] pair of numbers"
        if v > 0 and not all(math.isfinite(c) for c in p[:2]):
            return f"labelled joint {j} has a non-finite coordinate"
    return None


def _is_number(v) -> bool:
    return isinstance(v, (int, float))  # bools pass too: some writers store joints_vis as true/false


def _person(e: dict, pid: int) -> Person:
    person = Person(id=pid, center=_center(e.get("center")), scale=_scale(e.get("scale")))
    for j, (p, v) in enumerate(zip(e.get("joints") or [], e.get("joints_vis") or [])):
        if v > 0:
            person.kpts[j] = [float(p[0]) - 1.0, float(p[1]) - 1.0]
            person.kpts_vis[j] = 2  # labelled; MPII's is_visible is not in these files
    return person


def _center(c) -> list[float] | None:
    """Raw 1-based objpos → 0-based; HRNet's `-1` placeholder (and anything malformed) → None."""
    if (not isinstance(c, list) or len(c) != 2 or not all(_is_number(v) for v in c)
            or not all(math.isfinite(v) for v in c) or c[0] == -1):
        return None
    return [float(c[0]) - 1.0, float(c[1]) - 1.0]


def _scale(s) -> float | None:
    if not _is_number(s) or not math.isfinite(s) or s <= 0:
        return None
    return float(s)
