"""The prepared training set (`data.prepared`): every image and heatmap decoded once, at training
resolution, in memory-mapped uint8 shards that a data worker reads without decoding anything.

Layout of the folder `data.prepared` names (a cache several configs share):
    images/<sha>/frames.npy      uint8 [n, H, W, 3]: each image as `transforms.stored_image` makes it
    images/<sha>/index.json      per row: name, source key, width, height (of the source), h, w (of
                                 the stored frame), padded, bad (why it could not be decoded, or null)
    heatmaps/<sha>/frames.npy    uint8 [n, H, W]: the heatmap at the same geometry, round(255 · value)
    heatmaps/<sha>/index.json
    <kind>/<sha>.incomplete-<host>-<pid>/   a shard being built (renamed to <sha> when complete)
    report.json                  the last prepare's report
A shard holds up to `data.prepared_shard` images of the set, taken in name order. Its name is the
SHA-256 of everything its frames depend on: the geometry (image size, resize mode, letterbox fill),
and per image its name and its sources' key — the image file's size and mtime (or the hash of the
bytes embedded in a published folder), the heatmap PNG's likewise, or for heatmaps drawn from the
keypoints the mode, min_sigma and the keypoints themselves. A changed config or source file so names
another shard, which is built; nothing stale is ever read. Shards another config still uses stay.

Frames are stored before the random part of the geometry: crop keeps the resized frame (the shorter
side S) and draws its window per sample; squash and letterbox keep the final S×S. Flips and windows
run on the stored uint8 arrays, through the same formulas as the decoding path (`training/data.py`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from focusclip.core.errors import fail
from focusclip.training.config import DataConfig
from focusclip.training.sources import Item

VERSION = 1
KINDS = ("images", "heatmaps")
FRAMES, INDEX = "frames.npy", "index.json"


@dataclass(frozen=True)
class Geometry:
    """What every stored frame depends on beyond its own sources."""
    image_size: int
    resize: str
    fill: tuple[int, ...]            # letterbox padding colour of the pixels (mean_fill of the model's mean)

    def params(self, kind: str) -> dict:
        p = {"version": VERSION, "kind": kind, "image_size": self.image_size, "resize": self.resize}
        if kind == "images" and self.resize == "letterbox":
            p["fill"] = list(self.fill)
        return p


@dataclass(frozen=True)
class ShardPlan:
    kind: str
    sha: str
    names: tuple[str, ...]
    keys: tuple[str, ...]            # per member: its sources' key (index.json keeps them)


# ---------------------------------------------------------------------------------------- keys


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"file:{st.st_size}:{st.st_mtime_ns}"


def _bytes_key(data: bytes) -> str:
    return "bytes:" + hashlib.blake2b(data, digest_size=16).hexdigest()


def image_key(item: Item, cfg: DataConfig) -> str:
    if item.image_bytes is not None:
        return _bytes_key(item.image_bytes)
    return _file_key(Path(cfg.images) / item.image if cfg.images else Path(item.image))


def renders_heatmap(item: Item, cfg: DataConfig) -> bool:
    """Whether the item's heatmap is drawn from its keypoints (`render` mode, or its PNG is missing)."""
    return cfg.heatmaps == "render" or item.render_heatmap


def heatmap_key(item: Item, cfg: DataConfig, image: str) -> str:
    """The heatmap's source, with the image's (the plan follows the image's size)."""
    if renders_heatmap(item, cfg):
        kp = np.ascontiguousarray(item.kpts, np.float32).tobytes() + np.ascontiguousarray(item.kpts_vis, np.int64).tobytes()
        src = f"render:{cfg.heatmap_mode}:{cfg.min_sigma!r}:{hashlib.blake2b(kp, digest_size=16).hexdigest()}"
    elif cfg.heatmaps == "embedded":
        src = _bytes_key(item.heatmap_bytes or b"")
    else:
        src = _file_key(Path(cfg.heatmaps) / (Path(item.image).stem + ".png"))
    return f"{image}|{src}"


def plan_shards(items: list[Item], cfg: DataConfig, geo: Geometry, with_heatmaps: bool,
                shard_size: int) -> list[ShardPlan]:
    """The shards `items` need, in name order (a stat per source file; nothing is decoded)."""
    ordered = sorted({it.image: it for it in items}.values(), key=lambda it: it.image)
    img_keys = {it.image: image_key(it, cfg) for it in ordered}
    kinds = {"images": img_keys}
    if with_heatmaps:
        kinds["heatmaps"] = {it.image: heatmap_key(it, cfg, img_keys[it.image]) for it in ordered}
    plans = []
    for kind, keys in kinds.items():
        for lo in range(0, len(ordered), shard_size):
            names = tuple(it.image for it in ordered[lo:lo + shard_size])
            members = tuple(keys[n] for n in names)
            blob = json.dumps({**geo.params(kind), "members": list(zip(names, members))}, sort_keys=True)
            plans.append(ShardPlan(kind, hashlib.sha256(blob.encode()).hexdigest()[:32], names, members))
    return plans


def shard_dir(root: Path, plan: ShardPlan) -> Path:
    return root / plan.kind / plan.sha


def is_complete(root: Path, plan: ShardPlan) -> bool:
    """A shard counts once its folder has its final name (the rename is the completion marker)."""
    return (shard_dir(root, plan) / INDEX).is_file()


def is_damaged(root: Path, plan: ShardPlan) -> bool:
    """A complete-looking shard that cannot serve its members: an index that does not parse or names
    other images, or frames missing or cut short (a full disk, a partial copy). It is built again."""
    folder = shard_dir(root, plan)
    try:
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        names = [r["name"] for r in index["rows"]]
        frames = np.load(folder / FRAMES, mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return names != list(plan.names) or frames.shape[0] != len(names)


# -------------------------------------------------------------------------------------- reading


class PreparedBad(Exception):
    """A row whose source could not be decoded when the set was prepared; `kind` is the error's name
    then, so the skip is counted under the same name as the decoding path counts it."""

    def __init__(self, name: str, kind: str):
        super().__init__(f"{name}: {kind} (when prepared)")
        self.kind = kind


@dataclass(frozen=True)
class Row:
    shard: int                       # position in PreparedFrames.shards
    row: int
    width: int                       # the source image's size (the plan is made from it)
    height: int
    h: int                           # the stored frame's size
    w: int
    padded: bool
    bad: Optional[str]


class PreparedFrames:
    """Stored frames of a list of items, by item position: `frame("images", i, name)` → (uint8
    [h, w, 3], a memmap view; its `Row`: the source size and how it is stored), `frame("heatmaps", …)`
    → (uint8 [h, w], its `Row`). The memmaps are opened lazily in each process (a data worker opens
    its own; pickling sends only paths)."""

    def __init__(self, shards: list[Path], rows: dict[str, list[Row]]):
        self.shards, self.rows = shards, rows            # rows[kind][i]: item i's row in that kind
        self._open: dict[int, np.ndarray] = {}

    def __getstate__(self):
        return {"shards": self.shards, "rows": self.rows, "_open": {}}

    def _frames(self, shard: int) -> np.ndarray:
        arr = self._open.get(shard)
        if arr is None:
            arr = self._open[shard] = np.load(self.shards[shard] / FRAMES, mmap_mode="r")
        return arr

    def frame(self, kind: str, i: int, name: str) -> tuple[np.ndarray, Row]:
        """Item i's stored frame and row; `PreparedBad` when its source did not decode."""
        r = self.rows[kind][i]
        if r.bad is not None:
            raise PreparedBad(name, r.bad)
        return self._frames(r.shard)[r.row, :r.h, :r.w], r


def open_prepared(root: Path, plans: list[ShardPlan], items: list[Item]) -> PreparedFrames:
    """The reader for `items` over complete shards `plans` (every item must be in them)."""
    shards, where = [], {kind: {} for kind in KINDS}
    for plan in plans:
        folder = shard_dir(root, plan)
        index = _read_index(folder)
        shards.append(folder)
        for j, rec in enumerate(index["rows"]):
            where[plan.kind][rec["name"]] = Row(len(shards) - 1, j, rec["width"], rec["height"], rec["h"], rec["w"],
                                                bool(rec["padded"]), rec["bad"])
    rows = {kind: [where[kind][it.image] for it in items] for kind in KINDS if where[kind]}
    return PreparedFrames(shards, rows)


def _read_index(folder: Path) -> dict:
    """The index of a shard `prepare_set` checked (`is_damaged`) a moment ago."""
    try:
        return json.loads((folder / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise fail(f"a prepared shard was damaged during the start ({type(e).__name__})", str(folder),
                   "run again: a damaged shard is built again") from None


def shard_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def incomplete_owner(path: Path) -> tuple[str, int] | None:
    """(host, pid) of a `<sha>.incomplete-<host>-<pid>` folder, else None."""
    _, sep, tail = path.name.partition(".incomplete-")
    host, _, pid = tail.rpartition("-")
    return (host, int(pid)) if sep and pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
