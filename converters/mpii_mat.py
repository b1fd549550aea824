"""Read the official MPII Human Pose release (`mpii_human_pose_v1_u12_1.mat`) into annotation records.

Parses the `RELEASE` struct directly (docs/formats.md §1) and survives every quirk of docs/formats.md §10: bare
structs where arrays are expected, empty `annorect`/`annopoints`, one-point `point`, `is_visible`
missing/empty/char/numeric, test rects holding only `scale`/`objpos`, people without them, `act_id == -1`,
empty `frame_sec`/`vididx`, uint8/uint16 scalars and fractional coordinates. Output follows docs/design.md §3.1:
0-based float coordinates, COCO 0/1/2 visibility, 0-based `single_person`, `split` `train` or `test`
(`val` is assigned afterwards by `data.splits.assign_val`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from focusclip.converters.matfile import field, items, load_mat, number, structs, text
from focusclip.core.errors import fail
from focusclip.core.report import Report
from focusclip.data.records import Annotation, Person
from focusclip.data.skeleton import NUM_JOINTS

FIX = "pass the official mpii_human_pose_v1_u12_1.mat (or an HRNet/mmpose JSON list)"
HEAD_BOX_FIELDS = ("x1", "y1", "x2", "y2")


@dataclass
class _Release:
    """The per-image columns of RELEASE besides annolist, as plain lists (index = image index)."""
    img_train: list
    acts: list
    single_person: list
    videos: list[str]


@dataclass
class _JointStats:
    """Per-joint counters kept as plain ints in the hot loop and added to the report once."""
    unknown_vis: int = 0
    bad_id: int = 0
    no_xy: int = 0
    duplicate: int = 0


def read_mpii_mat(path: str | os.PathLike, report: Report | None = None) -> list[Annotation]:
    """All images of the release as records (test images and images without people included)."""
    release = load_mat(path, ("RELEASE",), FIX)["RELEASE"]
    return parse_release(release, str(path), report if report is not None else Report("convert"))


def parse_release(release, where: str, report: Report) -> list[Annotation]:
    """Turn a loaded `RELEASE` (loadmat with `converters.matfile.LOADMAT_OPTIONS`) into records."""
    annolist = field(release, "annolist")
    if annolist is None:
        raise fail("RELEASE has no 'annolist' field, so it is not the MPII release struct", where, FIX)
    entries = items(annolist)
    columns = _columns(release, len(entries), where)
    stats = _JointStats()
    records: list[Annotation] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        rec = _image(entry, i, columns, stats, report)
        if rec is None:
            continue
        if rec.image in seen:
            report.skip("duplicate image name in annolist (later entry dropped)", rec.image)
            continue
        seen.add(rec.image)
        records.append(rec)
    report.count("joints_visibility_unknown", stats.unknown_vis)
    for reason, n in (("joint id outside 0..15", stats.bad_id), ("joint without x/y", stats.no_xy),
                      ("duplicate joint id in one person (later point dropped)", stats.duplicate)):
        if n:
            report.skip(reason, n=n)
    return records


def _columns(release, n: int, where: str) -> _Release:
    img_train = [number(v) for v in items(field(release, "img_train"))]
    if len(img_train) != n:
        raise fail(f"RELEASE.img_train has {len(img_train)} entries for {n} annolist images", where, FIX)
    return _Release(img_train=img_train, acts=items(field(release, "act")),
                    single_person=items(field(release, "single_person")),
                    videos=[text(v) for v in items(field(release, "video_list"))])


def _image(entry, i: int, cols: _Release, stats: _JointStats, report: Report) -> Annotation | None:
    image = structs(field(entry, "image"))
    name = text(field(image[0], "name")).strip() if image else ""
    if not name:
        report.skip("annolist entry without image name", f"annolist({i + 1})")
        return None
    train = cols.img_train[i]
    if train is None:
        report.count("img_train_empty_taken_as_train")
    people = [_person(rect, k, stats, report) for k, rect in enumerate(structs(field(entry, "annorect")))]
    rec = Annotation(image=name, split="test" if train == 0 else "train", people=people)
    rec.video_id = _video_id(field(entry, "vididx"), cols.videos, name, report)
    frame = number(field(entry, "frame_sec"))
    rec.video_frame = int(frame) if frame is not None and float(frame).is_integer() else frame
    _activity(rec, cols.acts[i] if i < len(cols.acts) else None)
    rec.single_person = _single_person(cols.single_person[i] if i < len(cols.single_person) else None,
                                       len(people), name, report)
    if not people:
        report.count("images_without_people")
    if rec.split == "train" and not any(any(p.kpts_vis) for p in people):
        report.count("train_images_without_keypoints")
    return rec


def _video_id(vididx, videos: list[str], name: str, report: Report) -> str | None:
    """YouTube id from the 1-based `vididx` (docs/formats.md §1.4); empty → None."""
    idx = number(vididx)
    if idx is None:
        return None
    if float(idx).is_integer() and 1 <= idx <= len(videos) and videos[int(idx) - 1]:
        return videos[int(idx) - 1]
    report.skip("vididx outside video_list (video unknown)", name)
    return None


def _activity(rec: Annotation, act) -> None:
    """`act_id == -1` (or no act at all) is an unknown activity with empty names (docs/design.md §3.1)."""
    act_id = number(field(act, "act_id"))
    if act_id is None or act_id < 0:
        rec.activity_id, rec.category, rec.activity = -1, "", ""
        return
    rec.activity_id = int(act_id)
    # Names are kept whole: act_name itself may contain commas (docs/formats.md §1.5).
    rec.category = text(field(act, "cat_name")).strip()
    rec.activity = text(field(act, "act_name")).strip()


def _single_person(cell, n_people: int, name: str, report: Report) -> list[int]:
    """1-based rect ids (a scalar, an array or empty) → sorted unique 0-based person indices."""
    out: set[int] = set()
    for v in items(cell):
        k = number(v)
        if k is None or not float(k).is_integer() or not 1 <= k <= n_people:
            report.skip("single_person id outside annorect", name)
            continue
        out.add(int(k) - 1)
    return sorted(out)


def _person(rect, pid: int, stats: _JointStats, report: Report) -> Person:
    """One annorect → Person; absent fields (test rects, people without objpos/scale) become None."""
    d = rect.__dict__
    objpos = structs(d.get("objpos"))
    cx = number(field(objpos[0], "x")) if objpos else None
    cy = number(field(objpos[0], "y")) if objpos else None
    scale = number(d.get("scale"))
    box = [v if type(v) is int else number(v) for v in (d.get(k) for k in HEAD_BOX_FIELDS)]
    person = Person(id=pid,
                    center=[cx - 1.0, cy - 1.0] if cx is not None and cy is not None else None,
                    scale=float(scale) if scale is not None else None,
                    head_box=[v - 1.0 for v in box] if None not in box else None)
    if person.center is None or person.scale is None:
        report.count("people_without_center_or_scale")
    _joints(d.get("annopoints"), person, stats)
    return person


def _joints(annopoints, person: Person, stats: _JointStats) -> None:
    """Fill kpts/kpts_vis from `annopoints.point`, indexed by `point.id` (never by position)."""
    ap = structs(annopoints)
    if not ap:
        return
    kpts, vis = person.kpts, person.kpts_vis
    for pt in structs(field(ap[0], "point")):
        d = pt.__dict__
        # Fast path: squeezed uint8/uint16 cells are already Python ints (~600k points in the release).
        jid, x, y = d.get("id"), d.get("x"), d.get("y")
        if type(jid) is not int:
            jid = number(jid)
            jid = int(jid) if jid is not None and float(jid).is_integer() else -1
        if not 0 <= jid < NUM_JOINTS:
            stats.bad_id += 1
            continue
        if type(x) is not int:
            x = number(x)
        if type(y) is not int:
            y = number(y)
        if x is None or y is None:
            stats.no_xy += 1
            continue
        if vis[jid]:
            stats.duplicate += 1
            continue
        iv = d.get("is_visible")
        v = _VIS.get(iv) if type(iv) is str or type(iv) is int else None
        if v is None:
            v = _visibility(iv)
        if v is None:
            stats.unknown_vis += 1
            v = 2  # labelled, visibility unknown → counted as visible (docs/design.md §3.1)
        kpts[jid] = [x - 1.0, y - 1.0]
        vis[jid] = v


_VIS = {"1": 2, "0": 1, 1: 2, 0: 1}  # the common is_visible values, looked up without a call


def _visibility(v) -> int | None:
    """MPII `is_visible` → COCO: '1'/1 → 2 (visible), '0'/0 → 1 (occluded), missing/empty/other → None."""
    if type(v) is str:
        s = v.strip()
        return 2 if s == "1" else 1 if s == "0" else None
    n = number(v)
    return 2 if n == 1 else 1 if n == 0 else None
