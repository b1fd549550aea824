"""Write an MPII-layout `.mat` (the `RELEASE` struct of `mpii_human_pose_v1_u12_1.mat`) with scipy.io.savemat.

The synthetic world and the convert benchmark use it to produce files that `focus-data convert mpii`
reads exactly like the official release (docs/formats.md §1.2): `RELEASE.annolist` a (1, N) struct array
with `image`, `annorect`, `frame_sec`, `vididx`; `img_train` (1, N); `version`; `single_person` (N, 1)
cells of 1-based rect indices; `act` (N, 1) struct with `act_name`, `cat_name`, `act_id`; `video_list`
(1, V) cell of YouTube ids. Coordinates are written 1-based, as MATLAB stores them.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import scipy.io

from focusclip.core.io import atomic_path
from focusclip.data.records import Annotation, Person

__all__ = ["write_mpii_mat"]

# Field order of the release's structs: RELEASE, annolist and the test rect as printed from the real file
# (docs/formats.md §1.2); the train rect, point and act orders follow the README (not checked).
ANNOLIST_FIELDS = ("image", "annorect", "frame_sec", "vididx")
TRAIN_RECT_FIELDS = ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")
TEST_RECT_FIELDS = ("scale", "objpos")
POINT_FIELDS = ("x", "y", "id", "is_visible")
ACT_FIELDS = ("act_name", "cat_name", "act_id")


def write_mpii_mat(path: str | os.PathLike, images: Iterable[Annotation | dict], *,
                   video_list: list[str] | None = None, version: str = "12", compress: bool = True) -> None:
    """Write `images` (our 0-based annotation records, `data.records.Annotation` or their dicts) as an
    MPII release `.mat` at `path`, so that `focus-data convert mpii` gives the same records back.

    Mapping, record → file:
    - `image` → `annolist(i).image.name`; `split == "test"` → `img_train(i) = 0`, else 1
      (`val` is not stored in the release; the converter re-derives it).
    - people of train/val images become full rects: head box `x1 y1 x2 y2`, `scale`, `objpos.x/.y`,
      `annopoints.point` holding only the labelled joints (`kpts_vis > 0`) with `id`, `x`, `y` and
      `is_visible` (`'1'` for vis 2, `'0'` for vis 1). A person with no labelled joint gets an empty
      `annopoints`; unknown `center`/`scale`/`head_box` are written as empty arrays.
    - people of test images become test-style rects holding only `scale` and `objpos`.
    - an image without people gets an empty (0, 0) `annorect`.
    - coordinates are written 1-based (`+ 1`); integral values as uint16 like the release, others as double.
    - `video_id` → `vididx` (1-based index into `video_list`; ids missing from `video_list` are appended),
      `video_frame` → `frame_sec`; unknown ones are empty arrays.
    - `activity_id`/`category`/`activity` → `act(i).act_id/cat_name/act_name` (`-1` and empty names
      when unknown); `single_person` (0-based) → 1-based `single_person(i)`.
    `compress` zlib-compresses the variable as MATLAB's default `save` (v7) does.
    The file is written atomically (temp file + rename).
    """
    records = [r if isinstance(r, Annotation) else Annotation.from_dict(r) for r in images]
    videos = list(video_list or [])
    video_index = {v: i + 1 for i, v in enumerate(videos)}  # 1-based, like vididx
    n = len(records)
    annolist = np.empty((1, n), dtype=[(f, object) for f in ANNOLIST_FIELDS])
    act = np.empty((n, 1), dtype=[(f, object) for f in ACT_FIELDS])
    single_person = np.empty((n, 1), dtype=object)
    img_train = np.zeros((1, n), dtype=np.uint8)
    for i, rec in enumerate(records):
        if rec.video_id is not None and rec.video_id not in video_index:
            videos.append(rec.video_id)
            video_index[rec.video_id] = len(videos)
        test = rec.split == "test"
        img_train[0, i] = 0 if test else 1
        annolist[0, i] = (_struct({"name": rec.image}), _annorect(rec.people, test),
                          _number(rec.video_frame),
                          _number(video_index[rec.video_id] if rec.video_id is not None else None))
        act[i, 0] = (rec.activity or _EMPTY, rec.category or _EMPTY, np.array([[rec.activity_id]], np.int16))
        ids = [k + 1 for k in rec.single_person]
        single_person[i, 0] = np.array(ids, np.uint8).reshape(-1, 1) if ids else _EMPTY
    release = {"annolist": annolist, "img_train": img_train, "version": version,
               "single_person": single_person, "act": act,
               "video_list": np.array(videos, dtype=object).reshape(1, -1)}
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, {"RELEASE": release}, format="5", do_compression=compress)


_EMPTY = np.zeros((0, 0))


def _number(v: float | int | None, offset: float = 0.0) -> np.ndarray:
    """A (1, 1) MATLAB number; uint16 when it is a small non-negative integer (as in the release)."""
    if v is None:
        return _EMPTY
    v = float(v) + offset
    if v.is_integer() and 0 <= v < 65536:
        return np.array([[v]], np.uint16)
    return np.array([[v]], np.float64)


def _struct(fields: dict) -> np.ndarray:
    """A (1, 1) struct with the given fields, in order."""
    arr = np.empty((1, 1), dtype=[(k, object) for k in fields])
    arr[0, 0] = tuple(fields.values())
    return arr


def _struct_array(rows: list[tuple], names: tuple[str, ...]) -> np.ndarray:
    """A (1, n) struct array sharing one field set, as MATLAB stores `annorect` and `point`."""
    arr = np.empty((1, len(rows)), dtype=[(k, object) for k in names])
    for j, row in enumerate(rows):
        arr[0, j] = row
    return arr


def _annorect(people: list[Person], test: bool) -> np.ndarray:
    if not people:
        return _EMPTY
    rows = []
    for p in people:
        objpos = (_struct({"x": _number(p.center[0], 1), "y": _number(p.center[1], 1)})
                  if p.center is not None else _EMPTY)
        if test:
            rows.append((_number(p.scale), objpos))
            continue
        box = [_number(c, 1) for c in p.head_box] if p.head_box is not None else [_EMPTY] * 4
        rows.append((*box, _annopoints(p), _number(p.scale), objpos))
    return _struct_array(rows, TEST_RECT_FIELDS if test else TRAIN_RECT_FIELDS)


def _annopoints(p: Person) -> np.ndarray:
    points = [(_number(x, 1), _number(y, 1), np.array([[j]], np.uint8), "1" if v == 2 else "0")
              for j, ((x, y), v) in enumerate(zip(p.kpts, p.kpts_vis)) if v > 0]
    if not points:
        return _EMPTY
    return _struct({"point": _struct_array(points, POINT_FIELDS)})
