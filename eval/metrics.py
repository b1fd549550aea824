"""Zero-shot classification metrics from a score matrix and (possibly several) true labels per sample.

Single-label samples have one label; EMOTIC samples have several. One definition per metric, for
both (docs/eval.md, "Metrics"):
  top1, topk         the share of samples with any true label among the first 1 / k predictions;
  confusion [C, C]   rows true class, columns top-1 prediction, one count per true label;
  balanced_accuracy  per-class top-1 recall averaged over the classes present: for each class c, of
                     the samples whose labels include c, the share whose top-1 is c — the confusion
                     matrix's diagonal over its row sums. For single-label data, the usual mean recall.
`METRIC_VERSION` names this set of definitions in every results entry: version 1 (before the field)
credited every true label of a multi-label sample whose top-1 hit any of them, which was not the
documented definition and disagreed with the confusion matrix; single-label results are the same in both.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
METRIC_VERSION = 2      # results entries without `metric_version` were computed by version 1


def top_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """scores [N, C] → the k best class indices per row [N, k], best first. Ties go to the lower
    class index (stable sort), so results do not depend on the sort implementation."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def hits_at(preds: np.ndarray, labels: Sequence[Sequence[int]], k: int) -> np.ndarray:
    """[N] booleans: does any true label appear among the first k predictions?"""
    return np.array([bool(set(p[:k].tolist()) & set(lab)) for p, lab in zip(preds, labels)], dtype=bool)


def bootstrap_ci(hits: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float]:
    """95% percentile bootstrap interval of the mean of 0/1 hits.

    Resampling n of the n samples with replacement draws each one a hit with probability h/n, so
    the resampled hit count is exactly Binomial(n, h/n): drawing that is the nonparametric
    bootstrap without materialising [resamples, n] indices."""
    n = len(hits)
    if n == 0:
        return [float("nan"), float("nan")]
    p = float(np.mean(hits))
    means = np.random.default_rng(seed).binomial(n, p, size=resamples) / n
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def balanced_accuracy(pred1: np.ndarray, labels: Sequence[Sequence[int]], num_classes: int) -> float:
    """Per-class top-1 recall, averaged over the classes some sample carries: for class c, of the
    samples whose labels include c, the share whose top-1 prediction `pred1` is c (NaN with no sample)."""
    cm = confusion_matrix(pred1, labels, num_classes)
    carrying = cm.sum(axis=1)                     # samples whose labels include each class
    present = carrying > 0
    return float(np.mean(np.diag(cm)[present] / carrying[present])) if present.any() else float("nan")


def confusion_matrix(pred1: np.ndarray, labels: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """[C, C] counts, rows true class, columns top-1 prediction; a multi-label sample adds one
    count per true label."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, lab in zip(pred1, labels):
        for t in lab:
            cm[t, p] += 1
    return cm


def classification_metrics(scores: np.ndarray, labels: Sequence[Sequence[int]], k: int) -> dict:
    """scores [N, C] (higher is better), labels: per sample a non-empty list of class indices.
    Returns n, k, top1, topk, balanced_accuracy, ci95 (of topk), ci95_top1, confusion and
    metric_version."""
    n, num_classes = scores.shape
    assert n == len(labels), f"{n} score rows for {len(labels)} label lists"
    return ranked_metrics(top_predictions(scores, max(k, 1)), labels, k, num_classes)


def ranked_metrics(preds: np.ndarray, labels: Sequence[Sequence[int]], k: int, num_classes: int) -> dict:
    """The same from the ranked predictions alone: preds [N, ≥k] class indices, best first (what a
    predictions file holds, eval.predictions)."""
    n = len(preds)
    assert n == len(labels), f"{n} prediction rows for {len(labels)} label lists"
    preds = np.asarray(preds, dtype=np.int64)
    assert preds.ndim == 2 or n == 0, f"predictions must be [N, k], got {preds.shape}"
    preds = preds.reshape(n, -1) if n else np.zeros((0, max(k, 1)), np.int64)
    hit1 = hits_at(preds, labels, 1)
    hitk = hits_at(preds, labels, k)
    pred1 = preds[:, 0] if n else np.zeros(0, np.int64)
    return {
        "n": int(n),
        "k": int(k),
        "top1": float(hit1.mean()) if n else float("nan"),
        "topk": float(hitk.mean()) if n else float("nan"),
        "balanced_accuracy": balanced_accuracy(pred1, labels, num_classes),
        "ci95": bootstrap_ci(hitk),
        "ci95_top1": bootstrap_ci(hit1),
        "confusion": confusion_matrix(pred1, labels, num_classes).tolist(),
        "metric_version": METRIC_VERSION,
    }


def image_blind_levels(label_counts: Sequence[int], k: int) -> dict:
    """What a model that never looks at the image scores on a test set with these per-class label
    counts: `chance` (uniform guesses: k / C) and `blind` (the best constant answer: the k most
    frequent classes), each for top-1 and top-k."""
    counts = np.asarray(label_counts, dtype=float)
    n, c = max(1.0, counts.sum()), max(1, len(counts))
    top = np.sort(counts)[::-1]
    return {"chance_top1": 1 / c, "chance_topk": min(1.0, k / c),
            "blind_top1": float(top[:1].sum() / n), "blind_topk": float(top[:k].sum() / n)}

