"""Zero-shot classification of one task: text classifier once, images in batches.

    classifier = build_classifier(model, task.prompts())     # [D, C], once per task
    cache = EmbeddingCache()                                  # one per run: neighbouring tasks share images
    scores, reasons = score_samples(model, samples, classifier, batch_size=64, workers=4, cache=cache)
    # scores [N, C] cosine similarities; rows of unusable images are NaN, counted in `reasons`
"""
from __future__ import annotations

import contextlib
from collections import Counter
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate

from focusclip.core.devices import cpu_threads
from focusclip.core.progress import progress
from focusclip.eval.model import EvalModel
from focusclip.eval.readers.base import BadImage, Sample, load_image


def build_classifier(model: EvalModel, prompts: Sequence[Sequence[str]]) -> torch.Tensor:
    """[C][T] prompts → normalised zero-shot weights [D, C]: each class's T template embeddings are
    averaged (a template ensemble when T > 1) and renormalised. Pure: reads only the model."""
    num_classes, num_templates = len(prompts), len(prompts[0])
    assert all(len(row) == num_templates for row in prompts), "every class needs every template"
    flat = [p for row in prompts for p in row]
    with torch.no_grad():
        emb = model.encode_texts(flat).float()                       # [C*T, D]
    emb = F.normalize(emb, dim=-1).reshape(num_classes, num_templates, -1).mean(dim=1)  # [C, D]
    return F.normalize(emb, dim=-1).T.contiguous()                   # [D, C]


class ImageDataset(Dataset):
    """Samples → (pixels [3, S, S], index, reason). An unusable image gives a blank placeholder and
    the reason (one bad file must not stop a 20k-image evaluation); the reason is "" otherwise."""

    def __init__(self, samples: Sequence[Sample], preprocess, image_size: int):
        self.samples = samples
        self.preprocess = preprocess
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        try:
            return self.preprocess(load_image(self.samples[i].image)), i, ""
        except BadImage as e:
            return self.blank(), i, str(e)

    def blank(self):
        """What `preprocess` makes of a black S×S image: a placeholder of the right shape (pixels, or
        the dict a processor gives) for an unusable image's batch row."""
        return self.preprocess(Image.new("RGB", (self.image_size, self.image_size)))


def _collate(rows: list[tuple]) -> tuple[torch.Tensor, list[int], list[str]]:
    """(pixels [B, 3, S, S], indices, reasons): one tensor per batch. Each tensor a worker sends costs
    the trainer a socket round trip for its shared-memory handle; indices as a list cost none."""
    pixels = default_collate([r[0] for r in rows])        # stacked straight into shared memory in a worker
    return pixels, [r[1] for r in rows], [r[2] for r in rows]


def _autocast(device: torch.device, precision: str = "auto"):
    """fp16 autocast on CUDA (the encoders are matmul-bound) unless `precision` is fp32; nothing on the CPU."""
    if device.type == "cuda" and precision != "fp32":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


class EmbeddingCache:
    """The image embeddings of the last task scored, so the next task reuses those of the images it
    shares: FairFace, UTKFace and EMOTIC each feed two tasks the same crops, and FER+ relabels the
    FER2013 test pixels. Tasks that share images sit next to each other in the task list, so holding
    one task's embeddings ([N, D] float32, 8 MB per 4k images at D=512) catches every reuse.
    Keyed by `ImageRef`; an image that could not be used keeps its reason. One model per cache."""

    def __init__(self):
        self.rows: dict = {}      # ImageRef → np.ndarray [D], or the reason it is unusable
        self.reused = 0           # images taken from the cache, over the cache's life

    def split(self, refs: Sequence) -> tuple[dict, list[int]]:
        """The cached rows of `refs`, and the indices of the refs still to encode (first occurrences)."""
        known, todo, seen = {}, [], set()
        for i, ref in enumerate(refs):
            if ref in self.rows:
                known[ref] = self.rows[ref]
            elif ref not in seen:
                seen.add(ref)
                todo.append(i)
        self.reused += len(known)
        return known, todo

    def keep(self, rows: dict) -> None:
        self.rows = rows


def image_loader(model: EvalModel, samples: Sequence[Sample], batch_size: int, workers: int,
                 device: torch.device) -> DataLoader:
    """The decoding stage: batches (pixels [B, 3, S, S], indices, reasons) from `workers` processes."""
    return DataLoader(ImageDataset(samples, model.preprocess, model.image_size), batch_size=batch_size,
                      shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, collate_fn=_collate)


def embed_samples(model: EvalModel, samples: Sequence[Sample], *, batch_size: int = 64, workers: int = 4,
                  device: torch.device, progress: str | None = None,
                  precision: str = "auto") -> tuple[np.ndarray | None, list[str]]:
    """Unit-norm image embeddings [N, D] (float32, CPU; None when N = 0) through a DataLoader
    (decoding and preprocessing in `workers` processes), and one reason per sample: "" when usable,
    else why not (its row is then meaningless)."""
    if not samples:
        return None, []
    loader = image_loader(model, samples, batch_size, workers, device)
    feats: np.ndarray | None = None
    reasons = [""] * len(samples)
    bar = _progress(len(samples), progress)
    with torch.no_grad(), _autocast(device, precision), cpu_threads(device, workers):
        for pixels, index, why in loader:
            batch = model.encode_images(pixels).float().cpu().numpy()      # [B, D], unit norm
            if feats is None:
                feats = np.zeros((len(samples), batch.shape[1]), np.float32)
            feats[index] = batch
            for i, w in zip(index, why):
                reasons[i] = w
            bar.update(len(index))
    bar.close()
    return feats, reasons


def score_samples(model: EvalModel, samples: Sequence[Sample], classifier: torch.Tensor, *,
                  batch_size: int = 64, workers: int = 4, device: torch.device | None = None,
                  progress: str | None = None, cache: EmbeddingCache | None = None,
                  precision: str = "auto") -> tuple[np.ndarray, Counter]:
    """Cosine scores [N, C] of every sample against the classifier's classes. Rows of images that
    could not be used are NaN; `reasons` counts them. (Other non-finite rows come from the model: the
    caller counts them.) With a `cache`, images the previous task already encoded are not decoded or
    encoded again, and this task's embeddings replace it. `precision` fp32 turns off fp16 autocast on CUDA."""
    scores, why = score_rows(model, samples, classifier, batch_size=batch_size, workers=workers, device=device,
                             progress=progress, cache=cache, precision=precision)
    return scores, Counter(w for w in why if w)


def score_rows(model: EvalModel, samples: Sequence[Sample], classifier: torch.Tensor, *,
               batch_size: int = 64, workers: int = 4, device: torch.device | None = None,
               progress: str | None = None, cache: EmbeddingCache | None = None,
               precision: str = "auto") -> tuple[np.ndarray, list[str]]:
    """`score_samples` with one reason per row: "" for an image that was used, else why not."""
    device = device or classifier.device
    cache = cache if cache is not None else EmbeddingCache()
    refs = [s.image for s in samples]
    rows, todo = cache.split(refs)
    feats, why = embed_samples(model, [samples[i] for i in todo], batch_size=batch_size, workers=workers,
                               device=device, progress=progress, precision=precision)
    for j, i in enumerate(todo):
        rows[refs[i]] = why[j] or feats[j]
    cache.keep(rows)
    weights = classifier.float().cpu().numpy()                              # [D, C]
    scores = np.full((len(samples), classifier.shape[1]), np.nan, dtype=np.float32)
    reasons = [rows[ref] if isinstance(rows[ref], str) else "" for ref in refs]
    usable = [i for i, r in enumerate(reasons) if not r]
    if usable:
        scores[usable] = np.stack([rows[refs[i]] for i in usable]) @ weights
    return scores, reasons


def _progress(total: int, desc: str | None):
    return progress(total=total, desc=desc, unit="img", disable=desc is None, leave=False)
