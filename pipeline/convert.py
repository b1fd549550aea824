"""`focus-data convert`: the MPII release `.mat` or an HRNet/mmpose JSON → `annotations.jsonl`, and
EMOTIC's `Annotations.mat` → `DIR/{train,val,test}.jsonl` (docs/design.md §3.1, §4).

Everything is parsed before anything is written, and outputs are written atomically, so bad input
leaves no partial file. A rerun with the same options and an unchanged source keeps the finished
output (`force=True` redoes it).
"""
from __future__ import annotations

import contextlib
import gc
import os
import time
from pathlib import Path

from focusclip.converters.emotic import SPLITS as EMOTIC_SPLITS, read_emotic
from focusclip.converters.mpii_json import read_mpii_json, read_val_images
from focusclip.converters.mpii_mat import read_mpii_mat
from focusclip.core.errors import fail
from focusclip.core.io import read_json, write_jsonl
from focusclip.core.report import Report, report_path_for
from focusclip.core.preflight import writable_dir, writable_file
from focusclip.data.records import Annotation
from focusclip.data.splits import VAL_FRACTION, assign_val

MAT_MAGIC = (b"MATLAB", b"\x89HDF")
# What a record without width/height costs the stages after convert (checked against their code: heatmaps'
# image_status, data.geometry.position_word (prompts and filter's resolve_ref), publish's rows).
SIZES_UNKNOWN = ("image sizes unknown (no --images): width and height are null in every record; heatmaps "
                 "will read each image's header for its size, describe and filter cannot say or check which "
                 "third of the image (left/centre/right) a person is in, and the published width/height are null")


def run_convert_mpii(src: str | os.PathLike, output: str | os.PathLike,
                     split_json_dir: str | os.PathLike | None = None,
                     images: str | os.PathLike | None = None, force: bool = False) -> Report:
    """Convert one MPII source to `output` (JSONL, one record per image) and `<output>.report.json`."""
    src, output = Path(src), Path(output)
    options = {"src": str(src), "output": str(output),
               "split_json_dir": str(split_json_dir) if split_json_dir else None,
               "images": str(images) if images else None}
    report = Report("convert-mpii", options)
    report.extra["source"] = _fingerprint(src)
    done = None if force else _reusable(output, report)
    if done is not None:
        return done
    if output.resolve() == src.resolve():
        raise fail("output would overwrite the source", str(output), "pass another -o path")
    if output.is_dir():
        raise fail("output is a folder", str(output), "pass a file path such as out/annotations.jsonl")
    writable_file(output)
    with gc_paused():
        _convert_mpii(src, output, split_json_dir, images, report)
    report.save(report_path_for(output))
    return report


def _convert_mpii(src: Path, output: Path, split_json_dir, images, report: Report) -> None:
    t0 = time.perf_counter()
    records = read_mpii_source(src, report)
    report.time("read_s", time.perf_counter() - t0)
    _assign_splits(records, split_json_dir, report)
    if images is not None:
        t1 = time.perf_counter()
        fill_image_sizes(records, Path(images), report)
        report.time("image_sizes_s", time.perf_counter() - t1)
    else:
        report.extra["image_sizes"] = SIZES_UNKNOWN
    _summarize(records, report)
    t2 = time.perf_counter()
    with _writing(output):
        write_jsonl(output, (annotation_row(r) for r in records))
    report.time("write_s", time.perf_counter() - t2)
    report.extra["outputs"] = [str(output)]


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while millions of small acyclic objects are built.

    loadmat, the parser and the JSON rows allocate millions of objects (mat_structs, lists, floats)
    and free them by reference counting; the collector's repeated full scans of that heap cost about
    a third of the parse and a quarter of the load, and find nothing to collect."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_mpii_source(src: Path, report: Report) -> list[Annotation]:
    """Dispatch on content (a MATLAB header, or JSON), falling back to the file suffix."""
    if not src.is_file():
        raise fail("file not found", str(src), "pass mpii_human_pose_v1_u12_1.mat or an HRNet/mmpose JSON")
    with open(src, "rb") as f:
        head = f.read(64)
    if head.startswith(MAT_MAGIC) or src.suffix.lower() == ".mat":
        report.extra["source_format"] = "mpii-mat"
        return read_mpii_mat(src, report)
    if head.lstrip()[:1] in (b"[", b"{") or src.suffix.lower() == ".json":
        report.extra["source_format"] = "hrnet-json"
        return read_mpii_json(src, report)
    raise fail("is neither a MATLAB .mat file nor a JSON list", str(src),
               "pass mpii_human_pose_v1_u12_1.mat or an HRNet/mmpose JSON")


def _assign_splits(records: list[Annotation], split_json_dir, report: Report) -> None:
    val_images = read_val_images(split_json_dir) if split_json_dir else None
    report.extra["val_from"] = "split files" if val_images is not None else f"hash {VAL_FRACTION:.0%}"
    for key, n in assign_val(records, val_images).items():
        if n:
            report.count(key, n)
    if val_images is not None:
        absent = val_images - {r.image for r in records}
        if absent:
            report.skip("split-file val image not in the source", sorted(absent)[0], n=len(absent))


def fill_image_sizes(records: list[Annotation], images: Path, report: Report) -> None:
    """width/height from image headers (PIL opens lazily: no pixel is decoded); a missing or
    unreadable image keeps its record with a null size and is reported."""
    from PIL import Image, UnidentifiedImageError
    from focusclip.core.progress import progress

    if not images.is_dir():
        raise fail("image folder not found", str(images), "pass the folder holding the MPII .jpg files")
    for rec in progress(records, desc="image sizes", unit="img", disable=None):
        try:
            with Image.open(images / rec.image) as im:
                rec.width, rec.height = im.size
            report.count("images_found")
        except FileNotFoundError:
            report.skip("image file missing (record kept, size unknown)", rec.image)
        except (UnidentifiedImageError, OSError):
            report.skip("image file unreadable (record kept, size unknown)", rec.image)


def _summarize(records: list[Annotation], report: Report) -> None:
    report.count("images", len(records))
    for split in ("train", "val", "test"):
        report.count(f"split_{split}", sum(r.split == split for r in records))
    report.count("people", sum(len(r.people) for r in records))
    report.count("labelled_joints", sum(len(p.kpts_vis) - p.kpts_vis.count(0) for r in records for p in r.people))


def annotation_row(rec: Annotation) -> dict:
    """The record as a JSON-ready dict; a shallow copy, far cheaper than dataclasses.asdict."""
    row = dict(vars(rec))
    row["people"] = [dict(vars(p)) for p in rec.people]
    return row


def run_convert_emotic(mat: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False) -> Report:
    """EMOTIC `Annotations.mat` → `out_dir/{train,val,test}.jsonl` (one person per line) + `report.json`."""
    mat, out_dir = Path(mat), Path(out_dir)
    report = Report("convert-emotic", {"mat": str(mat), "out_dir": str(out_dir)})
    report.extra["source"] = _fingerprint(mat)
    outputs = [out_dir / f"{s}.jsonl" for s in EMOTIC_SPLITS]
    done = None if force else _reusable(out_dir, report, outputs)
    if done is not None:
        return done
    writable_dir(out_dir)
    t0 = time.perf_counter()
    splits = read_emotic(mat, report)
    report.time("read_s", time.perf_counter() - t0)
    for split, path in zip(EMOTIC_SPLITS, outputs):
        with _writing(path):
            write_jsonl(path, splits[split])
    report.extra["outputs"] = [str(p) for p in outputs]
    report.save(report_path_for(out_dir))
    return report


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write (no space, no permission) is a user error naming the path; the atomic
    writer has already removed its temp file."""
    try:
        yield
    except OSError as e:
        raise fail(f"cannot write ({e.strerror or e})", str(path), "check the output path and free space") from None


def _fingerprint(src: Path) -> dict | None:
    """Size and mtime of the source: a finished output is reused only while the source is unchanged."""
    try:
        st = src.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _reusable(output: Path, report: Report, outputs: list[Path] | None = None) -> Report | None:
    """The saved report, when `output` exists from the same options and source; else None."""
    rpath = report_path_for(output)
    if not rpath.is_file() or not all(p.is_file() for p in (outputs or [output])):
        return None
    try:
        saved = read_json(rpath)
    except Exception:  # an unreadable report means: redo
        return None
    if saved.get("options") != report.options or saved.get("source") != report.extra["source"]:
        return None
    done = Report(report.stage, report.options)
    done.counts, done.skipped = saved.get("counts", {}), saved.get("skipped", {})
    done.examples, done.timings = saved.get("skipped_examples", {}), saved.get("timings", {})
    done.extra = {k: v for k, v in saved.items() if k not in done.to_dict()}
    done.extra["reused"] = True
    return done
