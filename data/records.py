"""The annotation and description records of docs/design.md §3.1 and §3.2 as typed dataclasses.

Coordinates are 0-based float pixels; `kpts_vis` is COCO-style (0 unlabelled, 1 occluded, 2 visible);
code that needs "labelled" tests `v > 0`.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from focusclip.core.errors import fail
from focusclip.core.io import read_jsonl, write_jsonl
from focusclip.data.skeleton import NUM_JOINTS

SPLITS = ("train", "val", "test")
UNLABELLED = (-1.0, -1.0)


@dataclass
class Person:
    id: int
    center: list[float] | None = None       # [x, y], MPII objpos (rough person centre)
    scale: float | None = None              # person height / 200 px
    head_box: list[float] | None = None     # [x1, y1, x2, y2]
    kpts: list[list[float]] = field(default_factory=lambda: [list(UNLABELLED) for _ in range(NUM_JOINTS)])
    kpts_vis: list[int] = field(default_factory=lambda: [0] * NUM_JOINTS)

    @property
    def num_labelled(self) -> int:
        return sum(1 for v in self.kpts_vis if v > 0)

    @classmethod
    def from_dict(cls, d: dict) -> "Person":
        return cls(id=int(d["id"]), center=d.get("center"), scale=d.get("scale"),
                   head_box=d.get("head_box"), kpts=[list(map(float, p)) for p in d["kpts"]],
                   kpts_vis=[int(v) for v in d["kpts_vis"]])


@dataclass
class Annotation:
    image: str
    split: str
    width: int | None = None
    height: int | None = None
    video_id: str | None = None
    video_frame: int | None = None
    activity_id: int = -1
    category: str = ""
    activity: str = ""
    single_person: list[int] = field(default_factory=list)  # 0-based indices into people
    people: list[Person] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Annotation":
        return cls(image=d["image"], split=d["split"], width=d.get("width"), height=d.get("height"),
                   video_id=d.get("video_id"), video_frame=d.get("video_frame"),
                   activity_id=int(d.get("activity_id", -1)), category=d.get("category") or "",
                   activity=d.get("activity") or "", single_person=list(d.get("single_person") or []),
                   people=[Person.from_dict(p) for p in d.get("people") or []])


def validate_annotation(d: dict) -> str | None:
    """Return why a raw annotation dict breaks the schema, or None when it is sound."""
    for key in ("image", "split", "people"):
        if key not in d:
            return f"missing field '{key}'"
    if d["split"] not in SPLITS:
        return f"split '{d['split']}' is not one of {SPLITS}"
    for p in d["people"]:
        kpts, vis = p.get("kpts"), p.get("kpts_vis")
        if not isinstance(kpts, list) or len(kpts) != NUM_JOINTS:
            return f"person {p.get('id')}: kpts must hold {NUM_JOINTS} [x, y] pairs"
        if not isinstance(vis, list) or len(vis) != NUM_JOINTS:
            return f"person {p.get('id')}: kpts_vis must hold {NUM_JOINTS} values"
        for (x, y), v in zip(kpts, vis):
            if v not in (0, 1, 2):
                return f"person {p.get('id')}: visibility {v} is not 0, 1 or 2"
            if v > 0 and not (math.isfinite(x) and math.isfinite(y)):
                return f"person {p.get('id')}: a labelled joint has a non-finite coordinate"
    return None


def read_annotations(path: str | os.PathLike) -> list[Annotation]:
    """Read `annotations.jsonl`; a record that breaks the schema is a user error naming its line."""
    out = []
    for i, d in enumerate(read_jsonl(path)):
        why = validate_annotation(d)
        if why:
            raise fail(f"record {i + 1} ({d.get('image', '?')}): {why}", str(path),
                       "regenerate it with `focus-data convert`")
        out.append(Annotation.from_dict(d))
    return out


def write_annotations(path: str | os.PathLike, records: Iterable[Annotation]) -> int:
    return write_jsonl(Path(path), (r.to_dict() for r in records))


@dataclass
class Description:
    """One LLM (or template) description of one image (docs/design.md §3.2). Key: (image, describer, prompt_sha)."""
    image: str
    describer: str
    backend: str
    description: str
    prompt_id: str
    prompt_sha: str
    params: dict = field(default_factory=dict)
    finish_reason: str | None = "stop"
    usage: dict = field(default_factory=dict)
    created: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.image, self.describer, self.prompt_sha)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Description":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)
