"""Rows of the published dataset (docs/design.md §3.4): annotations joined with one describer's descriptions.

The columns of the original *MPII Human Pose Captions* dataset keep their names and meaning
(`image, video_id, video_frame, activity_id, activity, count, people[id, center, scale, kpts, kpts_vis],
description`); our richer fields ride beside them under their own names.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Features, Image, List, Value

from focusclip.core.errors import fail
from focusclip.core.io import read_jsonl
from focusclip.data.records import Annotation, Person, looks_like_annotation, not_descriptions, read_annotations
from focusclip.data.skeleton import NUM_JOINTS

# Annotation split (docs/design.md §3.1) → hub split name; the hub spells the held-out split "validation".
HUB_SPLIT = {"train": "train", "val": "validation", "test": "test"}
HUB_SPLITS = ("train", "validation", "test")

# Config names become folder names and YAML keys on the hub: ASCII letters, digits, '.', '_', '-',
# starting with a letter or digit. "data" is refused by datasets' own push_to_hub; the other two
# would collide with files at the folder's root.
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVED = {"data", "readme.md", "report.json"}


def check_config_names(names: list[str]) -> None:
    """A user error for a config name the hub (or this folder layout) cannot hold."""
    seen: set[str] = set()
    for name in names:
        if not _CONFIG_NAME.match(name) or name.lower() in _RESERVED:
            raise fail(f"config name '{name}' is not valid on the hub", "--descriptions",
                       "use 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, "
                       "and not 'data'")
        if name.lower() in seen:
            raise fail(f"config name '{name}' is given twice", "--descriptions",
                       "give each describer a different NAME (names are compared case-insensitively)")
        seen.add(name.lower())


def features(with_images: bool = False, with_heatmaps: bool = False) -> Features:
    """The explicit schema of every config. float64 keeps the annotation floats exact."""
    person = {
        "id": Value("int32"),
        "center": List(Value("float64"), length=2),                   # [x, y] or null
        "scale": Value("float64"),                                    # person height / 200 px
        "kpts": List(List(Value("float64"), length=2), length=NUM_JOINTS),  # (16, 2), MPII order
        "kpts_vis": List(Value("int8"), length=NUM_JOINTS),           # 0/1 labelled, as the original
        "visibility": List(Value("int8"), length=NUM_JOINTS),         # 0/1/2 COCO-style
        "head_box": List(Value("float64"), length=4),                 # [x1, y1, x2, y2] or null
    }
    cols = {
        "image": Value("string"), "video_id": Value("string"), "video_frame": Value("int32"),
        "activity_id": Value("int32"), "activity": Value("string"), "count": Value("int32"),
        "people": List(person), "description": Value("string"),
        "category": Value("string"), "split": Value("string"),
        "width": Value("int32"), "height": Value("int32"), "single_person": List(Value("int32")),
        "describer": Value("string"), "backend": Value("string"), "model": Value("string"),
        "prompt_id": Value("string"), "prompt_sha": Value("string"),
        "params": Value("string"),                                    # JSON object text
        # the filter's verdict on the caption (`check_columns`): the checks it passed, and the checks it
        # failed but was published anyway, with the filter's reason
        "checks_passed": List(Value("string")),
        "check_failures": List({"check": Value("string"), "reason": Value("string")}),
    }
    if with_images:
        cols["image_data"] = Image()
        if with_heatmaps:
            cols["heatmap"] = Image()
    return Features(cols)


@dataclass
class ConfigInput:
    """One describer's descriptions matched to annotations, grouped by hub split."""
    name: str
    path: Path
    pairs: dict[str, list[tuple[Annotation, dict]]] = field(default_factory=dict)
    shards: tuple[Path, ...] = ()     # the shard files read together (describe --shard I/N), path the first

    def rows(self, split: str) -> int:
        return len(self.pairs.get(split, []))


def index_annotations(path: Path) -> dict[str, Annotation]:
    """image name → annotation; when several records share an image, the last one wins."""
    return {a.image: a for a in read_annotations(path)}


def _dedupe(name: str, path: Path, report) -> dict[tuple, dict]:
    """Descriptions keyed by (image, describer, prompt_sha) (docs/design.md §3.2); the last record wins."""
    out: dict[tuple, dict] = {}
    for i, d in enumerate(read_jsonl(path)):
        if i == 0 and looks_like_annotation(d):
            raise not_descriptions(path)
        if not isinstance(d.get("image"), str) or not isinstance(d.get("description"), str):
            raise fail(f"record {i + 1} lacks a string 'image' or 'description'", str(path),
                       "pass a descriptions JSONL written by `focus-data describe` or `filter`")
        if d.get("reason") is not None and "checks" not in d:
            report.skip(f"{name}: rejected by the filter", d["image"])
            continue
        key = (d["image"], d.get("describer") or name, d.get("prompt_sha") or "")
        if key in out:
            report.skip(f"{name}: duplicate key (last record kept)", d["image"])
        out[key] = d
    return out


def load_config(name: str, path: Path, annotations: dict[str, Annotation], splits: tuple[str, ...],
                report) -> ConfigInput:
    """Match one descriptions file to the annotations. Images missing from the annotations are skipped
    and counted; when none match (or nothing is left to publish) the inputs are wrong: a user error."""
    if not path.is_file():
        raise fail("descriptions file not found", str(path), "check the PATH of --descriptions NAME=PATH")
    descs = _dedupe(name, path, report)
    if not descs:
        raise fail("holds no descriptions", str(path), "run `focus-data describe` (and `filter`) first")
    cfg = ConfigInput(name, path, {s: [] for s in splits})
    unmatched = 0
    for (image, _, _), d in descs.items():
        ann = annotations.get(image)
        if ann is None:
            unmatched += 1
            report.skip(f"{name}: image not in annotations", image)
        elif HUB_SPLIT[ann.split] not in cfg.pairs:
            report.skip(f"{name}: {HUB_SPLIT[ann.split]} split not published", image)
        else:
            cfg.pairs[HUB_SPLIT[ann.split]].append((ann, d))
    if unmatched == len(descs):
        raise fail(f"none of its {len(descs)} descriptions is of an image in the annotations", str(path),
                   "pass the annotations.jsonl these descriptions were made from")
    if not any(cfg.pairs.values()):
        raise fail(f"no descriptions of {'/'.join(splits)} images", str(path),
                   "describe those splits, or pass --test-split to publish test images")
    return cfg


def activity_text(category: str, activity: str) -> str:
    """The original dataset's `activity`: "<category>, <activity>" (empty when unknown)."""
    return ", ".join(x for x in (category, activity) if x)


def model_of(desc: dict) -> str | None:
    """The model behind a description, where the describer recorded one."""
    params = desc.get("params") if isinstance(desc.get("params"), dict) else {}
    return desc.get("model") or params.get("model") or None


def _person_row(p: Person, image: str) -> dict:
    for name, value, n in (("center", p.center, 2), ("head_box", p.head_box, 4)):
        if value is not None and len(value) != n:
            raise fail(f"person {p.id}: {name} must hold {n} numbers", image,
                       "regenerate the annotations with `focus-data convert`")
    return {"id": p.id, "center": p.center, "scale": p.scale, "kpts": p.kpts,
            "kpts_vis": [1 if v > 0 else 0 for v in p.kpts_vis], "visibility": list(p.kpts_vis),
            "head_box": p.head_box}


def check_columns(desc: dict) -> tuple[list[str], list[dict]]:
    """(checks passed, [{check, reason}] failed) from the filter's fields on a record: a kept record
    lists the checks it ran and passed (`checks`); one that also carries a rejection (`reason`,
    `reason_detail`) failed that check and is published all the same; a record the filter never saw
    has neither ([], [])."""
    ran = desc.get("checks") if isinstance(desc.get("checks"), list) else []
    reason = desc.get("reason") if isinstance(desc.get("reason"), str) else None
    failures = [{"check": reason, "reason": str(desc.get("reason_detail") or "")}] if reason else []
    return [c for c in ran if isinstance(c, str) and c != reason], failures


def to_row(ann: Annotation, desc: dict, config: str) -> dict:
    """One published row (without image bytes), columns in the order of `features()`."""
    params = desc.get("params") if isinstance(desc.get("params"), dict) else {}
    return {
        "image": ann.image, "video_id": ann.video_id, "video_frame": ann.video_frame,
        "activity_id": ann.activity_id, "activity": activity_text(ann.category, ann.activity),
        "count": len(ann.people), "people": [_person_row(p, ann.image) for p in ann.people],
        "description": desc["description"],
        "category": ann.category, "split": ann.split, "width": ann.width, "height": ann.height,
        "single_person": list(ann.single_person),
        "describer": desc.get("describer") or config, "backend": desc.get("backend"),
        "model": model_of(desc), "prompt_id": desc.get("prompt_id"), "prompt_sha": desc.get("prompt_sha"),
        "params": json.dumps(params, sort_keys=True, ensure_ascii=False),
        **dict(zip(("checks_passed", "check_failures"), check_columns(desc))),
    }
