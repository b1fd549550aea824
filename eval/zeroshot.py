"""Zero-shot classification of one task: text classifier once, images in batches.

    classifier = build_classifier(model, task.prompts())     # [D, C], once per task
    cache = EmbeddingCache()                                  # one per run: neighbouring tasks share images
    scores, reasons = score_samples(model, samples, classifier, batch_size=64, workers=4, cache=cache)
    # scores [N, C] cosine similarities; rows of unusable images are NaN, counted in `reasons`

Several models in one pass (`score_many`, `embed_many`): each image is decoded once, preprocessed once
per distinct preprocessing, and encoded by every model; each model's scores are those it gets alone.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from typing import Hashable, Sequence

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
    """(pixels [B, 3, S, S] — a tuple of them for several preprocessings — indices, reasons): one
    tensor per batch and preprocessing. Each tensor a worker sends costs
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
    return _loader(ImageDataset(samples, model.preprocess, model.image_size), batch_size, workers, device)


def _loader(dataset: Dataset, batch_size: int, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=False, collate_fn=_collate)


def preprocess_key(model: EvalModel) -> Hashable:
    """Models with equal keys preprocess an image into the same pixels, so a pass over several models
    preprocesses it once for them: focus-train checkpoints by (size, mean, std, geometry), which is all
    their `preprocess` reads; dual encoders by their image processor's settings; others never share."""
    from focusclip.training.checkpoint import LoadedModel

    if isinstance(model, LoadedModel):
        return ("focusclip", model.image_size, tuple(model.image_mean), tuple(model.image_std), model.resize)
    key = getattr(model, "preprocess_key", None)
    return key if key is not None else ("model", id(model))


class _Preprocessors:
    """Several preprocessings of one decoded image, as one `preprocess` for ImageDataset: a tuple out."""

    def __init__(self, fns: Sequence):
        self.fns = list(fns)

    def __call__(self, image) -> tuple:
        return tuple(fn(image) for fn in self.fns)


def embed_samples(model: EvalModel, samples: Sequence[Sample], *, batch_size: int = 64, workers: int = 4,
                  device: torch.device, progress: str | None = None,
                  precision: str = "auto") -> tuple[np.ndarray | None, list[str]]:
    """Unit-norm image embeddings [N, D] (float32, CPU; None when N = 0) through a DataLoader
    (decoding and preprocessing in `workers` processes), and one reason per sample: "" when usable,
    else why not (its row is then meaningless)."""
    feats, reasons = embed_many([model], samples, batch_size=batch_size, workers=workers, device=device,
                                progress=progress, precision=precision)
    return feats[0], reasons


def embed_many(models: Sequence[EvalModel], samples: Sequence[Sample], *, batch_size: int = 64, workers: int = 4,
               device: torch.device, progress: str | None = None,
               precision: str = "auto") -> tuple[list[np.ndarray | None], list[str]]:
    """`embed_samples` for several models in one pass: each image is decoded once, preprocessed once
    per distinct preprocessing (`preprocess_key`), and encoded by every model → one [N, D_m] per
    model, and the reasons (an unusable image is unusable for all)."""
    if not samples:
        return [None] * len(models), []
    keys = list(dict.fromkeys(preprocess_key(m) for m in models))          # distinct, in model order
    group = [keys.index(preprocess_key(m)) for m in models]                # model → its preprocessing
    fns = [next(m.preprocess for m, g in zip(models, group) if g == k) for k in range(len(keys))]
    size = max(m.image_size for m in models)
    loader = _loader(ImageDataset(samples, _Preprocessors(fns), size), batch_size, workers, device)
    feats: list[np.ndarray | None] = [None] * len(models)
    reasons = [""] * len(samples)
    bar = _progress(len(samples), progress)
    with torch.no_grad(), _autocast(device, precision), cpu_threads(device, workers):
        for pixels, index, why in loader:
            for m, model in enumerate(models):
                batch = model.encode_images(pixels[group[m]]).float().cpu().numpy()   # [B, D_m], unit norm
                if feats[m] is None:
                    feats[m] = np.zeros((len(samples), batch.shape[1]), np.float32)
                feats[m][index] = batch
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
    return score_many([model], samples, [classifier], batch_size=batch_size, workers=workers, device=device,
                      progress=progress, caches=[cache if cache is not None else EmbeddingCache()],
                      precision=precision)[0]


def score_many(models: Sequence[EvalModel], samples: Sequence[Sample], classifiers: Sequence[torch.Tensor], *,
               caches: Sequence[EmbeddingCache], batch_size: int = 64, workers: int = 4,
               device: torch.device | None = None, progress: str | None = None,
               precision: str = "auto") -> list[tuple[np.ndarray, list[str]]]:
    """`score_rows` for several models (each with its classifier [D_m, C] and its cache) in one pass
    over the images (`embed_many`): the images any model still needs are decoded once and encoded by
    every model, so each model's rows are what it would score alone."""
    device = device or classifiers[0].device
    refs = [s.image for s in samples]
    known, todo = [], set()
    for cache in caches:
        rows, need = cache.split(refs)
        known.append(rows)
        todo.update(need)                         # first occurrences, the same index for every cache
    todo = sorted(todo)
    feats, why = embed_many(models, [samples[i] for i in todo], batch_size=batch_size, workers=workers,
                            device=device, progress=progress, precision=precision)
    out = []
    for rows, cache, f, classifier in zip(known, caches, feats, classifiers):
        for j, i in enumerate(todo):
            rows[refs[i]] = why[j] or f[j]
        cache.keep(rows)
        weights = classifier.float().cpu().numpy()                              # [D, C]
        scores = np.full((len(samples), classifier.shape[1]), np.nan, dtype=np.float32)
        reasons = [rows[ref] if isinstance(rows[ref], str) else "" for ref in refs]
        usable = [i for i, r in enumerate(reasons) if not r]
        if usable:
            scores[usable] = np.stack([rows[refs[i]] for i in usable]) @ weights
        out.append((scores, reasons))
    return out


def _progress(total: int, desc: str | None):
    return progress(total=total, desc=desc, unit="img", disable=desc is None, leave=False)
