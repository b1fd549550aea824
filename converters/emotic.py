"""Read EMOTIC's `Annotations/Annotations.mat` (variables `train`, `val`, `test`) into person records.

Fields are read by name (docs/formats.md §2): images have `filename`, `folder`, `image_size.n_col/n_row`,
`original_database.name` and `person`; a train person has `body_bbox`, `annotations_categories`
(one annotator), `annotations_continuous`, `gender`, `age`; a val/test person has per-annotator
`annotations_categories`/`annotations_continuous` arrays plus `combined_categories`/`combined_continuous`.
Which kind a person is comes from its fields, not from the split name.

Record schema (one dict per person, the lines of `DIR/{split}.jsonl`; `read_emotic` returns the same):
  image               "<folder>/<filename>", relative to the EMOTIC image root (`emotic/`)
  folder, filename    as stored; split "train" | "val" | "test"
  image_index         index of the image in its split's struct array; person: index within the image
  width, height       from image_size (n_col, n_row), null when empty
  original_database   e.g. "mscoco", "emodb_small", "ade20k", "framesdb" ("" when absent)
  body_box            [x1, y1, x2, y2] floats clamped to [0, width] × [0, height]; null when absent
  categories          the labels (train: the annotator's; val/test: combined_categories), file spelling,
                      de-duplicated, file order; may be empty
  annotator_categories  per-annotator label lists (train: one list, equal to categories)
  valence, arousal, dominance   1–10 floats (val/test: combined_continuous); null for NaN or missing
  annotator_continuous  per annotator {"valence", "arousal", "dominance"} (train: one entry)
  gender, age         e.g. "Male"/"Female", "Adult" ("Teenager"/"Kid" unverified, docs/formats.md §2); null when empty
"""
from __future__ import annotations

import os

from focusclip.converters.matfile import field, items, load_mat, number, structs, text
from focusclip.core.report import Report

SPLITS = ("train", "val", "test")
FIX = "pass EMOTIC's Annotations/Annotations.mat"
VAD = ("valence", "arousal", "dominance")

# The 26 categories in EMOTIC's index order (Tandon-A/emotic mat2py.py; rkosti/emotic README).
CATEGORIES: tuple[str, ...] = (
    "Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval",
    "Disconnection", "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem",
    "Excitement", "Fatigue", "Fear", "Happiness", "Pain", "Peace", "Pleasure", "Sadness",
    "Sensitivity", "Suffering", "Surprise", "Sympathy", "Yearning",
)


def read_emotic(mat_path: str | os.PathLike, report: Report | None = None) -> dict[str, list[dict]]:
    """{"train": [...], "val": [...], "test": [...]}: one record per person (schema in the module doc)."""
    report = report if report is not None else Report("convert-emotic")
    data = load_mat(mat_path, SPLITS, FIX)
    out: dict[str, list[dict]] = {}
    for split in SPLITS:
        rows = out[split] = []
        for i, img in enumerate(items(data[split])):
            if not structs(img):
                report.skip("image entry is not a struct", f"{split}[{i}]")
                continue
            rows.extend(_image_records(img, split, i, report))
        report.count(f"{split}_people", len(rows))
    return out


def _image_records(img, split: str, index: int, report: Report) -> list[dict]:
    folder, filename = text(field(img, "folder")).strip(), text(field(img, "filename")).strip()
    if not filename:
        report.skip("image without filename", f"{split}[{index}]")
        return []
    size = structs(field(img, "image_size"))
    width = _size(field(size[0], "n_col")) if size else None
    height = _size(field(size[0], "n_row")) if size else None
    db = structs(field(img, "original_database"))
    base = {"image": f"{folder}/{filename}" if folder else filename, "folder": folder,
            "filename": filename, "split": split, "image_index": index, "person": 0,
            "width": width, "height": height,
            "original_database": text(field(db[0], "name")).strip() if db else ""}
    people = structs(field(img, "person"))
    if not people:
        report.skip("image without people", base["image"])
    report.count(f"{split}_images")
    return [{**base, "person": k, **_person(p, width, height, base["image"], report)}
            for k, p in enumerate(people)]


def _size(v) -> int | None:
    n = number(v)
    return int(n) if n is not None and n > 0 else None


def _person(p, width: int | None, height: int | None, where: str, report: Report) -> dict:
    if field(p, "combined_categories") is not None or field(p, "combined_continuous") is not None:
        annotators = [_labels(field(a, "categories")) for a in structs(field(p, "annotations_categories"))]
        categories = _labels(field(p, "combined_categories"))
        continuous = [_vad(a) for a in structs(field(p, "annotations_continuous"))]
        combined = _vad(_first(field(p, "combined_continuous")))
    else:  # train: one annotator, whose labels are the labels
        categories = _labels(field(_first(field(p, "annotations_categories")), "categories"))
        annotators = [categories]
        combined = _vad(_first(field(p, "annotations_continuous")))
        continuous = [combined]
    if not categories:
        report.count("people_without_categories")
    if None in combined.values():
        report.count("people_with_missing_vad")
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        report.skip("category name not among the 26 (kept as written)", f"{where}: {unknown[0]}")
    return {"body_box": _box(field(p, "body_bbox"), width, height, where, report),
            "categories": categories, "annotator_categories": annotators, **combined,
            "annotator_continuous": continuous,
            "gender": text(field(p, "gender")).strip() or None,
            "age": text(field(p, "age")).strip() or None}


def _first(x):
    s = structs(x)
    return s[0] if s else None


def _labels(x) -> list[str]:
    """A category cell: one bare string, a cell of strings, or empty → de-duplicated list."""
    out: list[str] = []
    for s in items(x):
        s = text(s).strip()
        if s and s not in out:
            out.append(s)
    return out


def _vad(s) -> dict:
    """{valence, arousal, dominance}, each checked on its own (NaN or empty → None)."""
    out = {}
    for k in VAD:
        v = number(field(s, k))
        out[k] = float(v) if v is not None else None
    return out


def _box(x, width: int | None, height: int | None, where: str, report: Report) -> list[float] | None:
    vals = [number(v) for v in items(x)]
    if len(vals) != 4 or None in vals:
        report.count("people_without_body_box")
        return None
    x1, y1, x2, y2 = (float(v) for v in vals)
    box = [_clamp(x1, width), _clamp(y1, height), _clamp(x2, width), _clamp(y2, height)]
    if box != [x1, y1, x2, y2]:
        report.count("body_boxes_clamped")
    if box[2] <= box[0] or box[3] <= box[1]:
        report.skip("body box empty after clamping (person kept)", where)
    return box


def _clamp(v: float, hi: int | None) -> float:
    return min(max(v, 0.0), float(hi)) if hi is not None else max(v, 0.0)
