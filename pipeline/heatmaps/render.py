"""The render-and-write half of `focus-data heatmaps`: batches in, atomically written PNGs out.

Two sinks take same-size batches as the records stream in:
- `DeviceSink` (GPU): the main thread renders and quantizes big batches on the device and copies
  uint8 levels into a ring of pinned host buffers; a pool of threads encodes one buffer while the
  device fills the next (cv2.imencode releases the GIL), so neither side waits.
- `CpuSink`: every pool thread renders (one torch thread each) and encodes its own small batches,
  which keeps all cores busy with no hand-off and each thread's buffers in the cache.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from focusclip.core.errors import fail
from focusclip.data.heatmaps import render_padded
from focusclip.core.io import atomic_path
from focusclip.core.report import Report
from focusclip.data.skeleton import NUM_JOINTS

# zlib level 1, the UP filter and run-length matching: ~2 ms and ~45 KB for a 1280×720 heatmap (a
# smooth image). Measured on cv2 5.0 against its default (SUB) and all-filters: as fast or faster,
# 40% smaller files. OpenCV without the filter option falls back to its default filter.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):
    PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
# Pixels per rendered batch: on a CPU each thread's float32 scratch stays in the cache (2 × 720p =
# 7 MB; fresh or larger buffers cost more in page faults and misses than the maths); on a GPU large
# batches mean few kernel launches.
BATCH_PIXELS = {"cpu": 2 ** 21, "cuda": 2 ** 26}
RING = 3  # pinned host buffers in flight: one being filled, two being encoded


@dataclass
class Item:
    """One image to render: its people as arrays (kpts [P, 16, 2], vis [P, 16]) and its size."""
    image: str
    src: str                              # the image file
    dst: str                              # its heatmap PNG
    kpts: np.ndarray
    vis: np.ndarray
    size: tuple[int, int] | None = None  # (height, width)


def batch_size(size: tuple[int, int], device_type: str) -> int:
    return max(1, min(128, BATCH_PIXELS.get(device_type, BATCH_PIXELS["cuda"]) // (size[0] * size[1])))


def batches(items: Iterable[Item], device_type: str) -> Iterator[tuple[tuple[int, int], list[Item]]]:
    """Stream items into same-size batches; a size's batch is yielded as soon as it is full."""
    pending: dict[tuple[int, int], list[Item]] = defaultdict(list)
    for item in items:
        group = pending[item.size]
        group.append(item)
        if len(group) >= batch_size(item.size, device_type):
            yield item.size, pending.pop(item.size)
    for size, group in pending.items():
        yield size, group


def encode_png(heatmap_u8: np.ndarray, path: str | Path) -> None:
    """Encode a uint8 [H, W] heatmap and write it atomically."""
    ok, buf = cv2.imencode(".png", heatmap_u8, PNG_PARAMS)
    if not ok:
        raise fail("PNG encoding failed", str(path), "check the OpenCV install")
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(buf.data)
    except OSError as e:
        raise fail(f"cannot write ({e.strerror})", str(path),
                   "check the output folder and free space") from None


def stack(items: Sequence[Item]) -> tuple[torch.Tensor, torch.Tensor]:
    """Items → padded host tensors kpts [B, P, 16, 2] and vis [B, P, 16] (padding unlabelled)."""
    p_max = max([it.kpts.shape[0] for it in items] + [1])
    kpts = np.zeros((len(items), p_max, NUM_JOINTS, 2), dtype=np.float32)
    vis = np.zeros((len(items), p_max, NUM_JOINTS), dtype=np.int64)
    for b, it in enumerate(items):
        kpts[b, : len(it.kpts)] = it.kpts
        vis[b, : len(it.vis)] = it.vis
    return torch.from_numpy(kpts), torch.from_numpy(vis)


def levels(chunk: Sequence[Item], size: tuple[int, int], mode: str, min_sigma: float, device: torch.device,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """round(255 · heatmap) as float32 [B, H, W] on `device` (peak=255 saves a pass over pixels)."""
    kpts, vis = stack(chunk)
    hm = render_padded(kpts.to(device), vis.to(device), size, mode, min_sigma, out=out, peak=255.0)
    return hm.round_()


class _Scratch(threading.local):
    """Per-thread float32 and uint8 buffers, reused across batches of one shape."""

    def get(self, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self, "shape", None) != shape:
            self.shape = shape
            self.f32 = torch.empty(shape, dtype=torch.float32)
            self.u8 = torch.empty(shape, dtype=torch.uint8)
        return self.f32, self.u8


class CpuSink:
    """Each batch is one pool task: render, quantize, encode and write. At most 2 × workers tasks
    wait at a time, so a write error surfaces early and memory stays flat."""

    def __init__(self, pool: ThreadPoolExecutor, workers: int, mode: str, min_sigma: float,
                 report: Report, bar: tqdm):
        self.pool, self.limit, self.mode, self.min_sigma = pool, 2 * workers, mode, min_sigma
        self.report, self.bar = report, bar
        self.scratch = _Scratch()
        self.pending: deque[tuple[Future, int]] = deque()

    def put(self, size: tuple[int, int], chunk: list[Item]) -> None:
        self.pending.append((self.pool.submit(self._task, size, chunk), len(chunk)))
        while len(self.pending) > self.limit:
            self._collect()

    def _task(self, size: tuple[int, int], chunk: list[Item]) -> float:
        t0 = time.perf_counter()
        f32, u8 = self.scratch.get((len(chunk), *size))
        u8.copy_(levels(chunk, size, self.mode, self.min_sigma, torch.device("cpu"), out=f32))
        seconds = time.perf_counter() - t0
        for i, item in enumerate(chunk):
            encode_png(u8[i].numpy(), item.dst)
        return seconds

    def _collect(self) -> None:
        fut, n = self.pending.popleft()
        self.report.time("render_s", fut.result())
        self.report.count("rendered", n)
        self.bar.update(n)

    def close(self) -> None:
        while self.pending:
            self._collect()

    def abort(self) -> None:
        for fut, _ in self.pending:
            fut.cancel()


class DeviceSink:
    """Renders on the device in the calling thread; a pinned host buffer is reused only once all
    its PNGs are written."""

    def __init__(self, pool: ThreadPoolExecutor, workers: int, mode: str, min_sigma: float,
                 device: torch.device, report: Report, bar: tqdm):
        self.pool, self.workers, self.mode, self.min_sigma = pool, workers, mode, min_sigma
        self.device, self.report, self.bar = device, report, bar
        self.ring: list[tuple[torch.Tensor | None, list[Future]]] = [(None, [])] * RING
        self.turn = 0

    def put(self, size: tuple[int, int], chunk: list[Item]) -> None:
        t0 = time.perf_counter()
        u8 = levels(chunk, size, self.mode, self.min_sigma, self.device).to(torch.uint8)  # 4× less to copy
        host, pending = self.ring[self.turn]
        for fut in pending:
            fut.result()
        if host is None or host.shape[1:] != u8.shape[1:] or host.shape[0] < len(chunk):
            host = torch.empty(u8.shape, dtype=torch.uint8, pin_memory=self.device.type == "cuda")
        view = host[: len(chunk)]
        view.copy_(u8)                                                    # waits for the device
        self.report.time("render_s", time.perf_counter() - t0)
        jobs = list(zip(view.numpy(), (item.dst for item in chunk)))
        step = -(-len(jobs) // self.workers)  # one task per worker: little Python per image
        futures = [self.pool.submit(self._encode_many, jobs[i : i + step]) for i in range(0, len(jobs), step)]
        self.ring[self.turn] = (host, futures)
        self.turn = (self.turn + 1) % RING
        self.report.count("rendered", len(chunk))

    def _encode_many(self, jobs: list[tuple[np.ndarray, str]]) -> None:
        for heatmap_u8, path in jobs:
            encode_png(heatmap_u8, path)
        self.bar.update(len(jobs))

    def close(self) -> None:
        for _, pending in self.ring:
            for fut in pending:
                fut.result()

    def abort(self) -> None:
        for _, pending in self.ring:
            for fut in pending:
                fut.cancel()
