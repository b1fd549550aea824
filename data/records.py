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


# The largest image side a record may claim: 4× a 4K frame, above every image of the datasets we read
# (MPII ≤ 1920 px, EMOTIC ≤ 6,000 px). A heatmap of 16,384² float32 is 1 GiB: a record claiming more is
# refused before anything is allocated for it.
MAX_IMAGE_SIDE = 16_384
DESCRIPTION_KEYS = ("describer", "description", "prompt_sha")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_list(v, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(_is_number(x) and math.isfinite(x) for x in v)


def _person_problem(p, index: int) -> str | None:
    if not isinstance(p, dict):
        return f"people[{index}] is not an object"
    who = f"person {p.get('id')!r}" if _is_int(p.get("id")) else f"people[{index}]"
    if not _is_int(p.get("id")):
        return f"{who}: id must be an integer"
    for key, n in (("center", 2), ("head_box", 4)):
        if p.get(key) is not None and not _finite_list(p[key], n):
            return f"{who}: {key} must be null or {n} finite numbers"
    scale = p.get("scale")
    if scale is not None and not (_is_number(scale) and math.isfinite(scale) and scale > 0):
        return f"{who}: scale must be null or a positive finite number"
    kpts, vis = p.get("kpts"), p.get("kpts_vis")
    if not isinstance(kpts, list) or len(kpts) != NUM_JOINTS or not all(
            isinstance(k, list) and len(k) == 2 and all(_is_number(c) for c in k) for k in kpts):
        return f"{who}: kpts must hold {NUM_JOINTS} [x, y] pairs of numbers"
    if not isinstance(vis, list) or len(vis) != NUM_JOINTS:
        return f"{who}: kpts_vis must hold {NUM_JOINTS} values"
    for (x, y), v in zip(kpts, vis):
        if not _is_int(v) or v not in (0, 1, 2):
            return f"{who}: visibility {v!r} is not 0, 1 or 2"
        if v > 0 and not (math.isfinite(x) and math.isfinite(y)):
            return f"{who}: a labelled joint has a non-finite coordinate"
    return None


def validate_annotation(d: dict) -> str | None:
    """Why a raw annotation dict breaks the schema of docs/design.md §3.1 — types, finite numbers, an
    image size within MAX_IMAGE_SIDE — or None when it is sound."""
    for key in ("image", "split", "people"):
        if key not in d:
            return f"missing field '{key}'"
    if not isinstance(d["image"], str) or not d["image"].strip():
        return "image must be a non-empty file name"
    if d["split"] not in SPLITS:
        return f"split {d['split']!r} is not one of {SPLITS}"
    for key in ("width", "height"):
        v = d.get(key)
        if v is not None and not (_is_int(v) and 0 < v <= MAX_IMAGE_SIDE):
            return f"{key} must be null or an integer from 1 to {MAX_IMAGE_SIDE}, got {v!r}"
    for key in ("video_id", "category", "activity"):
        if d.get(key) is not None and not isinstance(d[key], str):
            return f"{key} must be null or a string"
    for key in ("video_frame", "activity_id"):
        if d.get(key) is not None and not _is_int(d[key]):
            return f"{key} must be null or an integer"
    people = d["people"]
    if not isinstance(people, list):
        return "people must be a list"
    single = d.get("single_person") or []
    if not isinstance(single, list) or not all(_is_int(i) and 0 <= i < len(people) for i in single):
        return "single_person must list indices into people"
    for i, p in enumerate(people):
        why = _person_problem(p, i)
        if why:
            return why
    return None


def looks_like_annotation(d: dict) -> bool:
    """A record of an annotations file (docs/design.md §3.1), given where descriptions belong."""
    return "people" in d and "split" in d and "description" not in d


def not_descriptions(path) -> Exception:
    """The one-line error for an annotations file given where descriptions belong."""
    return fail("this is an annotations file (written by `focus-data convert`), not descriptions", str(path),
                "pass the descriptions/NAME.jsonl that `focus-data describe` or `filter` wrote")


def looks_like_description(d: dict) -> bool:
    """A record of a descriptions file (docs/design.md §3.2), given where annotations belong."""
    return all(k in d for k in DESCRIPTION_KEYS) and "people" not in d


def read_annotations(path: str | os.PathLike) -> list[Annotation]:
    """Read `annotations.jsonl`; a record that breaks the schema is a user error naming its line, and
    a descriptions file given instead says so."""
    out = []
    for i, d in enumerate(read_jsonl(path)):
        if looks_like_description(d):
            raise fail("this is a descriptions file (written by `focus-data describe`/`filter`), not annotations",
                       str(path), "pass the annotations.jsonl written by `focus-data convert`")
        why = validate_annotation(d)
        if why:
            raise fail(f"record {i + 1} ({d.get('image', '?')!r}): {why}", str(path),
                       "fix that record, or regenerate the file with `focus-data convert`")
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
