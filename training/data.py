"""The training dataset: image + ROI heatmap + one sampled description per image per step.

Every random choice of a sample (which description, crop offset, flip) comes from a generator
seeded by (seed, epoch, index), and the sampler's order from (seed, epoch): a run resumed at any
step sees exactly the samples the uninterrupted run would have, with any number of workers.

The pixels and heatmaps come from the source files (decoded and resized per sample), or from the
prepared set (`data.prepared`, `training/prepared.py`: uint8 frames already at training size). Both
paths draw the same random numbers in the same order and run the same pixel formula, so they give
the same tensors (docs/training.md gives the tolerance: 0 for images and PNG heatmaps).
"""
from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import torch
from PIL import Image

from focusclip.core.errors import FocusError, brief, fail
from focusclip.core.images import upright
from focusclip.data.heatmaps import render_heatmaps
from focusclip.core.report import Report
from focusclip.training.config import DataConfig, FocusConfig
from focusclip.training.prepared import PreparedBad, PreparedFrames, renders_heatmap
from focusclip.training.sources import Item, load_items
from focusclip.training.text import swap_left_right
from focusclip.training.transforms import (Plan, array_to_pixels, heatmap_png_to_tensor, image_to_pixels, plan_resize,
                                           window)

MAX_FALLBACKS = 16   # an unreadable image is replaced by the next readable one, at most this far on
DECODE_ERRORS = (OSError, ValueError, SyntaxError)    # what PIL raises for a file it cannot decode


class UnreadableImage(Exception):
    """An image that cannot be decoded: its sample is replaced by the next one and counted (`kind`:
    the decoder's error, so both the decoding path and the prepared set count it the same)."""

    def __init__(self, name: str, kind: str):
        super().__init__(f"{name}: {kind}")
        self.kind = kind


class DamagedHeatmap(FocusError):
    """A heatmap that exists but does not decode: the run stops with one line naming it (swapping in
    another sample would hide it, and drawing it again is cheap).

    Raised in a data worker, it reaches the trainer rebuilt by the DataLoader from the worker's
    traceback text ("Caught DamagedHeatmap in DataLoader worker process 0. Original Traceback …
    focusclip.training.data.DamagedHeatmap: <line>"); the constructor keeps that last line."""

    def __init__(self, message: str):
        tail = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith("Caught ") and tail in message:
            message = message.rsplit(tail, 1)[1].strip()
        super().__init__(message)


@dataclass(frozen=True)
class SampleSpec:
    """What a dataset needs beyond the items (the model's view of the pixels)."""
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    with_heatmaps: bool
    train: bool
    seed: int


class FocusDataset(torch.utils.data.Dataset):
    """Indexed by (epoch, index) pairs from `EpochBatchSampler`; returns a dict per sample:
    pixels [3, S, S], heatmap [S, S] (FocusCLIP only), text, image name, skipped (names).
    `frames`: the items' prepared frames (None: decode the source files)."""

    def __init__(self, items: list[Item], cfg: DataConfig, spec: SampleSpec,
                 frames: Optional[PreparedFrames] = None):
        self.items, self.cfg, self.spec, self.frames = items, cfg, spec, frames

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        skipped = []
        for k in range(MAX_FALLBACKS):
            i = (index + k) % len(self.items)
            try:
                sample = self._load(epoch, i)
            except UnreadableImage as e:
                skipped.append(f"{self.items[i].image}: {e.kind}")
                continue
            sample["skipped"] = skipped
            return sample
        raise RuntimeError(f"{MAX_FALLBACKS} unreadable images in a row from {self.items[index].image}: "
                           f"check data.images ({skipped[:3]})")

    def _load(self, epoch: int, i: int) -> dict:
        item, spec = self.items[i], self.spec
        rng = np.random.default_rng([spec.seed, epoch, i])
        text = item.descriptions[int(rng.integers(len(item.descriptions)))] if spec.train else item.descriptions[0]
        crop_rng = rng if (spec.train and self.cfg.random_crop) else None
        if self.frames is None:
            pixels, heatmap = self._decoded(item, crop_rng)
        else:
            pixels, heatmap = self._prepared(item, i, crop_rng)
        flip = spec.train and self.cfg.flip and bool(rng.random() < 0.5)
        out = {"pixels": pixels.flip(-1) if flip else pixels, "image": item.image,
               "text": swap_left_right(text) if flip else text}
        if heatmap is not None and self.cfg.uniform_heatmap:   # a control: as dim, with no focus
            heatmap = torch.full_like(heatmap, float(heatmap.mean()))
        if heatmap is not None:
            out["heatmap"] = heatmap.flip(-1) if flip else heatmap
        return out

    def _decoded(self, item: Item, crop_rng) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """pixels [3, S, S] and heatmap [S, S] (or None) from the source files."""
        spec = self.spec
        image = read_image(item, self.cfg)
        plan = plan_resize(image.width, image.height, spec.image_size, self.cfg.resize, crop_rng)
        pixels = image_to_pixels(image, plan, spec.mean, spec.std)                       # [3, S, S]
        return pixels, (self._heatmap(item, plan) if spec.with_heatmaps else None)

    def _prepared(self, item: Item, i: int, crop_rng) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The same from the prepared uint8 frames: the plan (and its random crop offset) is made
        from the source size, as `_decoded` makes it, then its window is cut from the stored frame."""
        spec, s = self.spec, self.spec.image_size
        try:
            rgb, row = self.frames.frame("images", i, item.image)                    # [h, w, 3] uint8
        except PreparedBad as e:
            raise UnreadableImage(item.image, e.kind) from None
        plan = plan_resize(row.width, row.height, s, self.cfg.resize, crop_rng)
        x0, y0 = (0, 0) if row.padded else (plan.x0, plan.y0)
        pixels = array_to_pixels(rgb[y0:y0 + s, x0:x0 + s], spec.mean, spec.std)         # [3, S, S]
        if not spec.with_heatmaps:
            return pixels, None
        try:
            hm, _ = self.frames.frame("heatmaps", i, item.image)                      # [h, w] uint8
        except PreparedBad as e:   # a set prepared before a damaged heatmap stopped the prepare
            raise damaged_heatmap(item, self.cfg, e.kind) from None
        return pixels, torch.from_numpy(np.asarray(hm[y0:y0 + s, x0:x0 + s], dtype=np.float32) / 255.0)

    def _heatmap(self, item: Item, plan: Plan) -> torch.Tensor:
        """[S, S] in [0, 1], aligned with the resized image (a flip mirrors it afterwards)."""
        if renders_heatmap(item, self.cfg):
            return self._render(item, plan)
        return heatmap_png_to_tensor(read_heatmap(item, self.cfg), plan)

    def _render(self, item: Item, plan: Plan) -> torch.Tensor:
        """Render at the resized frame's resolution with keypoints scaled to it, then take the same
        window as the image: a part half outside a crop keeps its true shape."""
        kpts = plan.resized_kpts(item.kpts)                                  # [P, 16, 2]
        hm = render_heatmaps((kpts, item.kpts_vis), (plan.new_height, plan.new_width), self.cfg.heatmap_mode,
                             min_sigma=self.cfg.min_sigma)                   # [H', W']
        return window(hm, plan.x0, plan.y0, plan.size)


def open_image(item: Item, cfg: DataConfig) -> Image.Image:
    """The item's image, opened (its header read, nothing decoded yet)."""
    if item.image_bytes is not None:
        return Image.open(io.BytesIO(item.image_bytes))
    return Image.open(Path(cfg.images) / item.image if cfg.images else item.image)


def read_image(item: Item, cfg: DataConfig) -> Image.Image:
    """The item's image decoded to RGB as displayed (EXIF orientation applied, as focus-eval does:
    focusclip.core.images); `UnreadableImage` when it does not decode."""
    try:
        with open_image(item, cfg) as img:
            return upright(img)
    except DECODE_ERRORS as e:
        raise UnreadableImage(item.image, type(e).__name__) from None


def read_heatmap(item: Item, cfg: DataConfig) -> Image.Image:
    """The item's heatmap PNG (`data.heatmaps/<stem>.png`, or the bytes a published folder embeds)
    decoded to 8-bit grayscale; one that does not decode stops the run (`DamagedHeatmap`)."""
    if cfg.heatmaps == "embedded":
        assert item.heatmap_bytes is not None, f"{item.image}: check_heatmaps lets no missing heatmap through"
        source = io.BytesIO(item.heatmap_bytes)
    else:
        source = heatmap_file(item, cfg)
    try:
        with Image.open(source) as png:
            return png.convert("L")
    except DECODE_ERRORS as e:
        raise damaged_heatmap(item, cfg, brief(e)) from None


def heatmap_file(item: Item, cfg: DataConfig) -> Path:
    return Path(cfg.heatmaps) / (Path(item.image).stem + ".png")


def damaged_heatmap(item: Item, cfg: DataConfig, why: str) -> DamagedHeatmap:
    if cfg.heatmaps == "embedded":
        return DamagedHeatmap(str(fail(f"the heatmap embedded for {item.image} does not decode ({why})", cfg.dataset,
                                       "publish the dataset again, or --set data.heatmaps=render")))
    return DamagedHeatmap(str(fail(f"heatmap does not decode ({why})", str(heatmap_file(item, cfg)),
                                   f"delete it and run `focus-data heatmaps ANNOTATIONS --images IMAGES -o "
                                   f"{cfg.heatmaps}` again, or --set data.heatmaps=render")))


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's micro-batches of (epoch, index) pairs. The epoch's order is a permutation
    seeded by (seed, epoch); global micro-batch k is order[k·G : (k+1)·G] with G = per_rank·world,
    and rank r takes its slice r. Incomplete global micro-batches are dropped (equal sizes on all
    ranks for the embedding gather). `start` skips micro-batches already trained (resume)."""

    def __init__(self, n: int, per_rank: int, rank: int = 0, world: int = 1, seed: int = 0,
                 shuffle: bool = True, epoch: int = 0, start: int = 0):
        self.n, self.per_rank, self.rank, self.world = n, per_rank, rank, world
        self.seed, self.shuffle, self.epoch, self.start = seed, shuffle, epoch, start

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.per_rank * self.world)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        g_size = self.per_rank * self.world
        for k in range(self.start, self.batches_per_epoch):
            lo = k * g_size + self.rank * self.per_rank
            yield [(self.epoch, i) for i in order[lo:lo + self.per_rank]]


class Collate:
    """Samples → a batch: pixels [B, 3, S, S], heatmaps [B, S, S], input_ids/attention_mask [B, T]
    padded to the longest text of the batch (or always to max_length), and the skipped names.

    `texts` (the training and validation descriptions, with their left/right-swapped twins when
    flips are on) are tokenised once, here, in the main process: a worker then only pads (0.05 ms a
    sample instead of 0.3 ms for a 200-word description). A text not among them is tokenised when it
    comes; either way the batch is what `tokenizer(texts, padding, truncation, max_length)` gives."""

    def __init__(self, tokenizer, max_length: int, padding: str = "longest", texts: Iterable[str] = ()):
        self.tokenizer, self.max_length, self.padding = tokenizer, max_length, padding
        self.encoded = self._encode(sorted(set(texts)))          # text → int32 [T] token ids

    def _encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        if not texts:
            return {}
        with _tokenizer_threads():
            ids = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_attention_mask=False,
                                 return_token_type_ids=False)["input_ids"]
        return {t: np.asarray(i, dtype=np.int32) for t, i in zip(texts, ids)}

    def _ids(self, text: str) -> list[int]:
        ids = self.encoded.get(text)
        if ids is None:
            return self.tokenizer(text, truncation=True, max_length=self.max_length, return_attention_mask=False,
                                  return_token_type_ids=False)["input_ids"]
        return ids.tolist()

    def __call__(self, samples: list[dict]) -> dict:
        tok = self.tokenizer.pad({"input_ids": [self._ids(s["text"]) for s in samples]}, padding=self.padding,
                                 max_length=self.max_length, return_tensors="pt")
        batch = {"pixels": _stack([s["pixels"] for s in samples]),
                 "input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"],
                 "texts": [s["text"] for s in samples], "images": [s["image"] for s in samples],
                 "skipped": [name for s in samples for name in s["skipped"]]}
        if "heatmap" in samples[0]:
            batch["heatmaps"] = _stack([s["heatmap"] for s in samples])
        return batch


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """torch.stack; in a data worker straight into shared memory, as torch's default_collate does, so
    sending the batch to the trainer copies nothing more (a [32, 3, 224, 224] batch is 19 MB)."""
    out = None
    if torch.utils.data.get_worker_info() is not None:
        t = tensors[0]
        storage = t._typed_storage()._new_shared(len(tensors) * t.numel(), device=t.device)
        out = t.new(storage).resize_(len(tensors), *t.shape)
    return torch.stack(tensors, out=out)


@contextlib.contextmanager
def _tokenizer_threads():
    """Let the Rust tokenizer use every core for the one up-front batch, then switch it off again
    before data workers fork (a tokenizer that used threads and then forks warns and may deadlock)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        os.environ["TOKENIZERS_PARALLELISM"] = "false" if before is None else before


def training_texts(items: list[Item], flip: bool) -> list[str]:
    """Every text a sample of `items` can carry: each description, and its mirror when flips are on."""
    texts = [t for it in items for t in it.descriptions]
    return texts + [swap_left_right(t) for t in texts] if flip else texts


class RunBatchSampler(torch.utils.data.Sampler):
    """Every micro-batch of the run from micro-batch `start` of `epoch` on, epoch after epoch (each
    as `EpochBatchSampler` orders it): one DataLoader iterator, and so one set of workers, serves
    the whole run, and they keep loading across an epoch's end while validation runs."""

    def __init__(self, n: int, per_rank: int, rank: int, world: int, seed: int, epochs: int,
                 epoch: int = 0, start: int = 0):
        self.args, self.epochs, self.epoch, self.start = (n, per_rank, rank, world, seed), epochs, epoch, start

    def _epochs(self) -> Iterator[EpochBatchSampler]:
        for e in range(self.epoch, self.epochs):
            yield EpochBatchSampler(*self.args, epoch=e, start=self.start if e == self.epoch else 0)

    def __len__(self) -> int:
        return sum(len(s) for s in self._epochs())

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for sampler in self._epochs():
            yield from sampler


def make_loader(dataset: FocusDataset, sampler: torch.utils.data.Sampler, collate: Collate, num_workers: int,
                pin_memory: bool = False, seed: int = 0, prefetch: int = 4) -> torch.utils.data.DataLoader:
    """Persistent workers, each `prefetch` batches ahead; pinned batches for a GPU. The workers'
    base seed comes from a generator seeded with `seed`, not from torch's global one: creating the
    iterator then draws nothing a training step draws from (samples take their randomness from
    (seed, epoch, index) anyway)."""
    extra = {"persistent_workers": True, "prefetch_factor": prefetch} if num_workers > 0 else {}
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                                       pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed), **extra)


def select_items(cfg: FocusConfig, report: Report, with_heatmaps: bool) -> tuple[list[Item], list[Item]]:
    """(train, val) items of the config: described images whose files exist (missing ones skipped
    and counted), their heatmaps checked (`check_heatmaps`), counted in `report`."""
    items = load_items(cfg.data.dataset, cfg.data.describers, cfg.data.annotations, report)
    images = Path(cfg.data.images) if cfg.data.images else None
    present = []
    for it in items:   # files absent on disk are skipped and counted once, up front
        if it.image_bytes is None and not ((images / it.image) if images else Path(it.image)).is_file():
            report.skip("image file missing", it.image)
        else:
            present.append(it)
    train = split_items(present, cfg.data.train_split, cfg.data.limit)
    val = split_items(present, cfg.data.val_split)
    if not train:
        raise fail(f"no '{cfg.data.train_split}' images with descriptions and image files", cfg.data.dataset,
                   "check data.images, data.annotations and data.train_split")
    if with_heatmaps:
        checked = check_heatmaps(train + val, cfg.data, report)
        train, val = checked[:len(train)], checked[len(train):]
    report.count("train_images", len(train))
    report.count("train_descriptions", sum(len(it.descriptions) for it in train))
    report.count("val_images", len(val))
    return train, val


def split_items(items: list[Item], split: str, limit: Optional[int] = None) -> list[Item]:
    chosen = [it for it in items if it.split == split]
    return chosen[:limit] if limit else chosen


def check_heatmaps(items: list[Item], cfg: DataConfig, report: Report) -> list[Item]:
    """`items`, every heatmap checked to exist (a PNG in the folder, or embedded bytes) before
    training. Missing ones are an error, or with `data.missing_heatmaps: render` drawn from the
    keypoints: those come back with `render_heatmap` set, and are counted. `render` mode needs no files."""
    if cfg.heatmaps == "render":
        return items
    if cfg.heatmaps == "embedded":
        missing = [it for it in items if it.heatmap_bytes is None]
        where, fix = cfg.dataset, "publish the dataset --with-images"
    else:
        missing = [it for it in items if not heatmap_file(it, cfg).is_file()]
        where, fix = cfg.heatmaps, f"run `focus-data heatmaps ANNOTATIONS --images IMAGES -o {cfg.heatmaps}`"
    if not missing:
        return items
    names = ", ".join(Path(it.image).stem + ".png" for it in missing[:3])
    if cfg.missing_heatmaps == "error":
        raise fail(f"{len(missing)} of the {len(items)} images have no heatmap (e.g. {names})", where,
                   f"{fix}, or --set data.missing_heatmaps=render to draw the missing ones from keypoints")
    report.count("heatmaps_rendered", len(missing))
    report.extra["heatmaps_rendered_examples"] = [Path(it.image).stem + ".png" for it in missing[:10]]
    drawn = {it.image for it in missing}
    return [replace(it, render_heatmap=True) if it.image in drawn else it for it in items]


def count_skips(counter: Counter, batch: dict) -> None:
    for name in batch["skipped"]:
        counter[name] += 1
