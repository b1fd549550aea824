"""Building the prepared training set (`training/prepared.py` describes it): `prepare_set` is the
step `focus-train` runs before training when `data.prepared` is set, `run_prepare` the
`focus-train prepare CONFIG` command that runs only it.

Each missing shard is decoded in a worker process (up to `train.num_workers` at once; under
torchrun each rank builds its share of them), written into `<sha>.incomplete-<host>-<pid>/` and
renamed to `<sha>/` when complete. A killed prepare keeps every finished shard; the next run
removes the dead process's partial folder and builds only what is missing.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from focusclip.core.errors import fail
from focusclip.core.images import displayed_size
from focusclip.data.heatmaps import render_heatmaps, to_uint8
from focusclip.core.io import write_json
from focusclip.core.lock import output_lock
from focusclip.core.report import Report
from focusclip.core.progress import progress
from focusclip.training.config import DataConfig, FocusConfig, to_dict
from focusclip.training.data import DECODE_ERRORS, UnreadableImage, open_image, read_heatmap, read_image, select_items
from focusclip.training.prepared import (FRAMES, INDEX, KINDS, Geometry, ShardPlan, incomplete_owner, is_complete,
                                         is_damaged, pid_alive, plan_shards, renders_heatmap, shard_bytes, shard_dir)
from focusclip.training.sources import Item
from focusclip.training.transforms import mean_fill, pads, plan_resize, stored_heatmap_png, stored_image, window


def geometry(cfg: FocusConfig) -> Geometry:
    return Geometry(cfg.train.image_size, cfg.data.resize, mean_fill(cfg.model.vision.image_mean))


def prepare_set(cfg: FocusConfig, items: list[Item], report: Report, with_heatmaps: bool, rank: int = 0,
                world: int = 1, barrier=lambda: None, force: bool = False) -> list[ShardPlan]:
    """Make sure every shard `items` need is in `data.prepared` (building the missing ones) → the
    plans, all complete. Under DDP every rank calls it: rank r builds missing shards r, r + W, …,
    `barrier()` waits for all, then each rank checks them."""
    root, geo = Path(cfg.data.prepared), geometry(cfg)
    t0 = time.perf_counter()
    plans = plan_shards(items, cfg.data, geo, with_heatmaps, cfg.data.prepared_shard)
    damaged = [p for p in plans if is_complete(root, p) and is_damaged(root, p)] if rank == 0 else []
    if rank == 0:
        for p in plans if force else damaged:
            shutil.rmtree(shard_dir(root, p), ignore_errors=True)
        _remove_dead_partials(root)
    barrier()
    missing = [p for p in plans if not is_complete(root, p)]
    mine = missing[rank::world]
    if mine:
        _build(root, mine, {it.image: it for it in items}, cfg.data, geo, max(1, cfg.train.num_workers), rank == 0)
    barrier()
    lost = [p for p in plans if not is_complete(root, p)]
    if lost:
        raise fail(f"{len(lost)} prepared shard(s) are missing after the build", str(root),
                   "check that the folder is writable and not shared with a cleaner; rerun")
    _report(report, root, plans, missing, len(damaged), time.perf_counter() - t0)
    return plans


def _report(report: Report, root: Path, plans: list[ShardPlan], built: list[ShardPlan], damaged: int,
            seconds: float) -> None:
    sizes = {p.sha: shard_bytes(shard_dir(root, p)) for p in plans}
    n = len({name for p in plans for name in p.names})
    by_kind = {k: sum(sizes[p.sha] for p in plans if p.kind == k) for k in KINDS}
    known = {p.sha for p in plans}
    unused = [d for k in KINDS if (root / k).is_dir() for d in (root / k).iterdir()
              if d.is_dir() and d.name not in known and ".incomplete-" not in d.name]
    report.extra["prepared"] = {
        "folder": str(root), "images": n, "shards": len(plans), "built": len(built),
        "reused": len(plans) - len(built), "damaged_rebuilt": damaged, "bytes": sum(sizes.values()),
        "bytes_per_1000_images": {k: round(v * 1000 / max(1, n)) for k, v in by_kind.items() if v},
        "unused_shards": len(unused), "seconds": round(seconds, 2)}
    mb = sum(sizes.values()) / 2**20
    print(f"prepared set {root}: {len(plans)} shards of {n} images ({mb:.0f} MiB), {len(built)} built, "
          f"{len(plans) - len(built)} reused" + (f" ({damaged} damaged ones built again)" if damaged else "")
          + (f"; {len(unused)} shards there serve other configs" if unused else ""),
          file=sys.stderr)


def _remove_dead_partials(root: Path) -> None:
    """Partial shards of prepares that died on this host (a live one may be building next door)."""
    host = socket.gethostname()
    for kind in KINDS:
        for d in (root / kind).glob("*.incomplete-*") if (root / kind).is_dir() else ():
            owner = incomplete_owner(d)
            if owner and owner[0] == host and not pid_alive(owner[1]):
                shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------- building


def _build(root: Path, plans: list[ShardPlan], items: dict[str, Item], cfg: DataConfig, geo: Geometry,
           workers: int, show: bool) -> None:
    for kind in KINDS:
        (root / kind).mkdir(parents=True, exist_ok=True)
    bar = progress(total=sum(len(p.names) for p in plans), desc="prepare", unit="img", disable=not show)
    job = (root, items, cfg, geo)
    try:
        if workers == 1 or len(plans) == 1:
            _init(job, pool=False)
            for p in plans:
                build_shard(p, bar.update)
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            with ctx.Pool(min(workers, len(plans)), initializer=_init, initargs=(job,)) as pool:
                for n in pool.imap_unordered(build_shard, plans):
                    bar.update(n)
    finally:
        bar.close()


_JOB: Optional[tuple] = None      # (root, items by name, DataConfig, Geometry) of this worker


def _init(job: tuple, pool: bool = True) -> None:
    global _JOB
    _JOB = job
    if pool:
        import torch

        torch.set_num_threads(1)  # one core per worker: the pool is the parallelism


def build_shard(plan: ShardPlan, tick=lambda n: None) -> int:
    """Decode one shard's members into `<sha>.incomplete-<host>-<pid>/`, then rename it `<sha>/`."""
    root, items, cfg, geo = _JOB
    final = shard_dir(root, plan)
    tmp = final.with_name(f"{plan.sha}.incomplete-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    members = [items[name] for name in plan.names]
    rows = [_row(it, cfg, geo) for it in members]                      # sizes from the headers
    h = max(r["h"] for r in rows)
    w = max(r["w"] for r in rows)
    shape = (len(rows), h, w, 3) if plan.kind == "images" else (len(rows), h, w)
    frames = np.lib.format.open_memmap(tmp / FRAMES, mode="w+", dtype=np.uint8, shape=shape)
    for j, (it, r) in enumerate(zip(members, rows)):
        if r["bad"] is None:
            try:
                frames[j, :r["h"], :r["w"]] = _decode(plan.kind, it, r, cfg, geo)
            except UnreadableImage as e:
                r["bad"] = e.kind
        r["key"] = plan.keys[j]
        tick(1)
    frames.flush()
    del frames
    write_json(tmp / INDEX, {"kind": plan.kind, **geo.params(plan.kind), "rows": rows})
    try:
        tmp.rename(final)
    except OSError:               # another process finished the same shard first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_complete(root, plan):
            raise
    return len(rows)


def _row(item: Item, cfg: DataConfig, geo: Geometry) -> dict:
    """The index row of one member from its image's header: source size, stored size, padding."""
    row = {"name": item.image, "width": 0, "height": 0, "h": 1, "w": 1, "padded": False, "bad": None}
    try:
        with open_image(item, cfg) as img:
            width, height = displayed_size(img)      # as read_image makes it: EXIF orientation applied
    except DECODE_ERRORS as e:
        return {**row, "bad": type(e).__name__}
    plan = plan_resize(width, height, geo.image_size, geo.resize)
    padded = pads(plan)
    h, w = (plan.size, plan.size) if padded else (plan.new_height, plan.new_width)
    return {**row, "width": width, "height": height, "h": h, "w": w, "padded": padded}


def _decode(kind: str, item: Item, r: dict, cfg: DataConfig, geo: Geometry) -> np.ndarray:
    """The stored frame of one member: uint8 [h, w, 3] (images) or [h, w] (heatmaps). An image
    that does not decode is stored as such (`UnreadableImage`); a heatmap stops the prepare
    (`DamagedHeatmap`, as it stops training from the files)."""
    plan = plan_resize(r["width"], r["height"], geo.image_size, geo.resize)
    if kind == "images":
        return np.asarray(stored_image(read_image(item, cfg), plan, geo.fill))
    if renders_heatmap(item, cfg):
        hm = render_heatmaps((plan.resized_kpts(item.kpts), item.kpts_vis), (plan.new_height, plan.new_width),
                             cfg.heatmap_mode, min_sigma=cfg.min_sigma)                  # [H', W'] float
        if r["padded"]:
            hm = window(hm, plan.x0, plan.y0, plan.size)
        return to_uint8(hm).numpy()
    return np.asarray(stored_heatmap_png(read_heatmap(item, cfg), plan))


# ------------------------------------------------------------------------------------ the command


def run_prepare(cfg: FocusConfig, force: bool = False) -> Report:
    """`focus-train prepare CONFIG`: build (or check) the prepared set of the config's training and
    validation images, and write `data.prepared/report.json`."""
    if not cfg.data.prepared:
        raise fail("data.prepared is not set", "config", "--set data.prepared=out/prepared (a folder to keep it in)")
    report = Report("prepare", to_dict(cfg))
    with output_lock(cfg.data.prepared, "data.prepared"):   # one prepare per folder (trainings build without it)
        train, val = select_items(cfg, report, cfg.model.triple)
        prepare_set(cfg, train + val, report, cfg.model.triple, force=force)
        report.save(Path(cfg.data.prepared) / "report.json")
    return report
