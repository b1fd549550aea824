"""`focus-data heatmaps`: one 8-bit grayscale ROI heatmap PNG per image (docs/design.md §3.3).

Flow: annotation rows, read leniently (a bad record or coordinate is counted, never a crash) → this
shard → each image's size (the record, else the image header, never a decode) → valid PNGs already
written are skipped → same-size batches → a sink (`render`) renders them on the
device and writes the PNGs atomically from a pool of threads. `OUT_DIR/report.json` counts
everything; `--preview N` adds overlays.
"""
from __future__ import annotations

import json
import os
import stat
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from focusclip.core.errors import fail
from focusclip.core.images import displayed_size
from focusclip.core.devices import cpu_threads, resolve_device
from focusclip.core.lock import output_lock
from focusclip.data.heatmaps import MODES, people_arrays, usable_joints
from focusclip.data.records import MAX_IMAGE_SIDE, looks_like_description
from focusclip.core.report import Report, report_path_for
from focusclip.core.preflight import writable_dir
from focusclip.core.sharding import parse_shard
from focusclip.core.progress import progress
from focusclip.pipeline.heatmaps.preview import render_overlay, write_previews
from focusclip.pipeline.heatmaps.render import CpuSink, DeviceSink, Item, batches, encode_png

__all__ = ["HeatmapsConfig", "Item", "run_heatmaps", "render_overlay", "encode_png", "png_size",
           "image_size", "collect_items"]


@dataclass(frozen=True)
class HeatmapsConfig:
    annotations: Path
    images: Path
    out_dir: Path
    mode: str = "parts"
    device: str = "auto"
    min_sigma: float = 1.0
    force: bool = False
    shard: str | None = None
    preview: int = 0
    workers: int | None = None


# ------------------------------------------------------------------------------------------ records


def iter_rows(path: Path, report: Report) -> Iterator[dict]:
    """JSONL rows, streamed. A torn last line (a crash mid-write upstream) or any other line that is
    not a JSON object is skipped and counted as a bad record, naming its line."""
    if not path.is_file():
        raise fail("file not found", str(path), "pass the annotations.jsonl from `focus-data convert`")
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            report.count("records")
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):   # RecursionError: [[[[…
                row = None
            if isinstance(row, dict):
                yield row
            else:
                report.skip("bad record", f"line {number}")


def row_item(row: dict, cfg: HeatmapsConfig, report: Report) -> Item | None:
    """One annotation row → an Item, or None (counted) when it is unusable. A descriptions file given
    instead of annotations stops the run at its first record."""
    if looks_like_description(row):
        raise fail("this is a descriptions file (written by `focus-data describe`/`filter`), not annotations",
                   str(cfg.annotations), "pass the annotations.jsonl written by `focus-data convert`")
    image, people = row.get("image"), row.get("people")
    if not isinstance(image, str) or not image.strip() or not isinstance(people, list):
        report.skip("bad record", str(image))
        return None
    try:
        kpts, vis = people_arrays(people)
    except (AttributeError, TypeError, ValueError):
        report.skip("bad record", image)
        return None
    # Plain strings, not Paths: this runs once per record, before any rendering starts.
    stem = os.path.splitext(os.path.basename(image))[0]
    return Item(image, os.path.join(cfg.images, image), os.path.join(cfg.out_dir, stem + ".png"),
                kpts, vis, _record_size(row))


def count_joints(items: list[Item], report: Report) -> None:
    """People, people with fewer than two usable joints, and labelled joints with a bad coordinate
    (which the renderer ignores, as if unlabelled), in one vectorised pass over the items."""
    if not items:
        return
    kpts = np.concatenate([it.kpts for it in items])                     # [P, 16, 2]
    vis = np.concatenate([it.vis for it in items])                       # [P, 16]
    usable = usable_joints(kpts, vis)
    bad = ((vis > 0) & ~usable).sum(-1)                                  # [P]
    report.count("people", len(kpts))
    report.count("people_under_two_joints", int((usable.sum(-1) < 2).sum()))
    report.count("bad_coordinates", int(bad.sum()))
    owner = np.repeat(np.arange(len(items)), [len(it.kpts) for it in items])
    flagged = np.unique(owner[bad > 0])[:10]
    if len(flagged):
        report.extra["bad_coordinate_examples"] = [items[i].image for i in flagged]


def _record_size(row: dict) -> tuple[int, int] | None:
    w, h = row.get("width"), row.get("height")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        return h, w
    return None


def _too_large(size: tuple[int, int] | None) -> bool:
    return size is not None and max(size) > MAX_IMAGE_SIDE


# ---------------------------------------------------------------------------------------- file checks


def image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of the image as displayed (its EXIF orientation applied, as training and
    evaluation see it: focusclip.core.images) from the header, without decoding the pixels; None when
    unreadable."""
    from PIL import Image

    try:   # PIL's decompression-bomb check is for decoding; only the header is read here
        with Image.open(path) as im:
            w, h = displayed_size(im)
        return (h, w) if w > 0 and h > 0 else None
    except Exception:  # PIL raises many kinds (UnidentifiedImageError, OSError, SyntaxError, …)
        return None


def png_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an 8-bit grayscale PNG from its IHDR chunk (33 bytes); None otherwise."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError:
        return None
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    w, h, depth, colour = struct.unpack(">IIBB", head[16:26])
    return (h, w) if (depth, colour) == (8, 0) and w > 0 and h > 0 else None


def image_status(item: Item) -> str:
    """Fill item.size; 'ok', 'missing image' or 'unreadable image'. A record's size is trusted, so
    only images without one are opened (header only)."""
    try:
        st = os.stat(item.src)
    except OSError:
        return "missing image"
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return "unreadable image"
    if item.size is None:
        item.size = image_size(Path(item.src))
    if _too_large(item.size):   # a heatmap is H×W float32 on the device: refused before allocating it
        return f"image over {MAX_IMAGE_SIDE} px"
    return "ok" if item.size is not None else "unreadable image"


def collect_items(cfg: HeatmapsConfig, report: Report) -> tuple[list[Item], list[Item]]:
    """(the shard's items, those that need rendering). Duplicates, bad records, missing or
    unreadable images and finished PNGs are counted in the report.

    All records are read before rendering starts: reading is pure Python, and overlapping it with
    the render/encode threads would make them wait for the GIL (5 ms switch interval) far longer
    than reading takes (~15 µs a record)."""
    t0 = time.perf_counter()
    index, count = parse_shard(cfg.shard)
    existing = set() if cfg.force or not cfg.out_dir.is_dir() else set(os.listdir(cfg.out_dir))
    outputs: set[str] = set()
    seen: list[Item] = []
    todo: list[Item] = []
    for row in iter_rows(cfg.annotations, report):
        item = row_item(row, cfg, report)
        if item is None:
            continue
        if item.dst in outputs:
            report.skip("duplicate image", item.image)
            continue
        outputs.add(item.dst)
        if (len(outputs) - 1) % count != index:  # round-robin, as core.sharding.take_shard
            continue
        seen.append(item)
        status = image_status(item)
        if status != "ok":
            report.skip(status, item.image)
        elif not len(item.kpts):   # its heatmap would be blank: never written as if it were one
            report.skip("no person", item.image)
        elif os.path.basename(item.dst) in existing and png_size(Path(item.dst)) == item.size:
            report.skip("already done", item.image)
        else:
            todo.append(item)
    report.count("images", len(outputs))
    count_joints(seen, report)
    report.time("read_s", time.perf_counter() - t0)
    return seen, todo


# ---------------------------------------------------------------------------------------------- stage


def run_heatmaps(annotations: str | os.PathLike, images: str | os.PathLike, out_dir: str | os.PathLike,
                 mode: str = "parts", device: str = "auto", min_sigma: float = 1.0, force: bool = False,
                 shard: str | None = None, preview: int = 0, workers: int | None = None) -> Report:
    """Render one heatmap PNG per image of `annotations` into `out_dir` (+ `out_dir/report.json`).
    Raises FocusError, before writing anything, when there is nothing to render and nothing was
    already done."""
    cfg = HeatmapsConfig(Path(annotations), Path(images), Path(out_dir), mode, device, float(min_sigma),
                         force, shard, int(preview or 0), workers)
    dev, n_workers = _check_config(cfg)
    i, n = parse_shard(cfg.shard)   # one writer per folder and shard (shards write disjoint PNGs)
    with output_lock(cfg.out_dir.with_name(f"{cfg.out_dir.name}.shard-{i}-of-{n}") if n > 1 else cfg.out_dir):
        return _run(cfg, dev, n_workers)


def _run(cfg: HeatmapsConfig, dev: torch.device, n_workers: int) -> Report:
    report = Report("heatmaps", {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()})
    report.extra.update({"device_used": str(dev), "workers_used": n_workers})
    report.count("rendered", 0)
    seen, todo = collect_items(cfg, report)
    report.count("images_in_shard", len(seen))
    _check_input(seen, todo, report, cfg)
    _render_all(todo, cfg, dev, n_workers, report)
    if cfg.preview > 0:
        done = ((it.src, it.size, it.kpts, it.vis) for it in seen if it.size and os.path.isfile(it.dst))
        report.count("previews", write_previews(done, cfg.out_dir / "preview", cfg.preview, cfg.mode,
                                                cfg.min_sigma))
    report.save(report_path_for(cfg.out_dir))
    return report


def _render_all(todo: list[Item], cfg: HeatmapsConfig, dev: torch.device, workers: int,
                report: Report) -> None:
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    bar = progress(total=len(todo), desc="heatmaps", unit="img", disable=not todo)
    # On a CPU the pool's threads render with torch themselves and own every core: one torch
    # thread each, no oversubscription.
    threads = cpu_threads(dev, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix="heatmaps") as pool, bar, threads:
        sink = (CpuSink(pool, workers, cfg.mode, cfg.min_sigma, report, bar) if dev.type == "cpu"
                else DeviceSink(pool, workers, cfg.mode, cfg.min_sigma, dev, report, bar))
        try:
            for size, chunk in batches(todo, dev.type):
                sink.put(size, chunk)
            sink.close()
        except BaseException:
            sink.abort()
            raise


def _check_config(cfg: HeatmapsConfig) -> tuple[torch.device, int]:
    if cfg.mode not in MODES:
        raise fail(f"unknown mode '{cfg.mode}'", "--mode", f"use one of {', '.join(MODES)}")
    if not (cfg.min_sigma > 0 and np.isfinite(cfg.min_sigma)):
        raise fail(f"--min-sigma must be a positive number, got {cfg.min_sigma}", None, "e.g. --min-sigma 1")
    if not cfg.images.is_dir():
        raise fail("image folder not found", str(cfg.images), "pass --images DIR with the MPII images")
    writable_dir(cfg.out_dir)
    if cfg.workers is not None and cfg.workers < 1:
        raise fail(f"--workers must be at least 1, got {cfg.workers}", None, "e.g. --workers 4")
    if cfg.preview < 0:
        raise fail(f"--preview must be 0 or more, got {cfg.preview}", None, "e.g. --preview 8")
    parse_shard(cfg.shard)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return resolve_device(cfg.device), cfg.workers or cores or 1


def _check_input(seen: list[Item], todo: list[Item], report: Report, cfg: HeatmapsConfig) -> None:
    """No input is a user error, raised before anything is written: no annotation record, or
    nothing to render and nothing already done (no usable record, no readable image). An empty
    shard (more shards than images) has nothing to do and is not an error."""
    if report.counts.get("records", 0) == 0:
        raise fail("holds no annotation records", str(cfg.annotations), "run `focus-data convert` first")
    nothing = not todo and report.skipped.get("already done", 0) == 0
    if nothing and (seen or report.counts.get("images", 0) == 0):
        reasons = ", ".join(f"{n} {why}" for why, n in report.skipped.items() if n)
        where = cfg.images if seen else cfg.annotations
        raise fail(f"no heatmap can be rendered ({reasons})", str(where),
                   "check --images" if seen else "pass the annotations.jsonl of `focus-data convert`")
