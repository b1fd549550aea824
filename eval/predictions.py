"""`focus-eval --predictions FILE`: every image of every task and model, with its labels and ranked
classes, in one parquet file — what a user needs to see which images a model got wrong, or to check
a number against another tool (docs/eval.md, "Predictions").

One row per sample a task scored (the reader's skips are only counted, in results.json):
    model, checkpoint_sha256, task, k      which model and weights, which task (and its top-k)
    index, key, image                      the sample's position in the task, its id, its file (or clip)
    labels, label_names                    the true classes (several for EMOTIC), indices into `classes`
    skipped                                "" when scored, else why not (unreadable image, non-finite score)
    topk, topk_names, topk_scores          the best max(k, 5) classes, best first, and their scores
    options                                the task's options (JSON), as in results.json
The file's metadata (key `focusclip`) holds per task its `classes` and per model how a score reads
(`score`: cosine similarity of unit image and class embeddings; `logit_scale`, `logit_bias` where the
model has them). The ranking is the one the metrics use, so `ranked_metrics(topk, labels, k, C)`
gives results.json's numbers exactly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from focusclip.core.errors import fail
from focusclip.core.io import atomic_path
from focusclip.eval.metrics import METRIC_VERSION, top_predictions

TOP = 5          # classes kept per row beyond the task's k: enough to see the near misses
META_KEY = b"focusclip"


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("model", pa.string()), ("checkpoint_sha256", pa.string()), ("task", pa.string()), ("k", pa.int16()),
        ("index", pa.int32()), ("key", pa.string()), ("image", pa.string()),
        ("labels", pa.list_(pa.int16())), ("label_names", pa.list_(pa.string())), ("skipped", pa.string()),
        ("topk", pa.list_(pa.int16())), ("topk_names", pa.list_(pa.string())),
        ("topk_scores", pa.list_(pa.float32())), ("options", pa.string()),
    ])


def model_info(model) -> dict:
    """How a model's scores read, for the file's metadata."""
    info = {"checkpoint": {"path": str(getattr(model, "path", None) or "") or None,
                           "sha256": getattr(model, "sha256", None)},
            "score": "cosine similarity of the unit image and class embeddings"}
    for name in ("logit_scale", "logit_bias"):
        value = getattr(model, name, None)
        if value is not None:
            info[name] = float(value)
    return info


def task_rows(model, task, samples: Sequence, labels: Sequence[Sequence[int]], scores: np.ndarray,
              reasons: Sequence[str], options: dict) -> dict:
    """The columns of one task's rows: `scores` [N, C] (NaN/inf rows unusable), `reasons` per row
    ("" for a usable image; a usable image whose scores are not finite is a non-finite score)."""
    names = task.class_names
    top = min(len(names), max(task.k, TOP))
    usable = np.isfinite(scores).all(axis=1)
    ranked = top_predictions(np.where(usable[:, None], scores, 0.0), top)          # [N, top], best first
    cols: dict[str, list] = {c: [] for c in _schema().names}
    for i, s in enumerate(samples):
        why = reasons[i] or ("" if usable[i] else "non-finite score")
        order = ranked[i].tolist() if not why else []
        cols["index"].append(i)
        cols["key"].append(s.key)
        cols["image"].append(s.image.path or s.image.video or "")
        cols["labels"].append(list(labels[i]))
        cols["label_names"].append([names[c] for c in labels[i]])
        cols["skipped"].append(why)
        cols["topk"].append(order)
        cols["topk_names"].append([names[c] for c in order])
        cols["topk_scores"].append([float(scores[i, c]) for c in order])
    n = len(samples)
    cols.update(model=[model.name] * n, checkpoint_sha256=[getattr(model, "sha256", None)] * n,
                task=[task.id] * n, k=[task.k] * n, options=[json.dumps(options, sort_keys=True)] * n)
    return cols


class PredictionsFile:
    """The rows of earlier runs (when the file exists) plus this run's, written atomically after
    every task. A task's rows replace that model's earlier rows of the task."""

    def __init__(self, path: Path):
        import pyarrow as pa

        self.path = Path(path)
        self.meta: dict = {"metric_version": METRIC_VERSION, "tasks": {}, "models": {}}
        self.table = _schema().empty_table()
        if self.path.exists():
            self.table, meta = _read(self.path)
            self.meta["tasks"].update(meta.get("tasks", {}))
            self.meta["models"].update(meta.get("models", {}))
        self._pa = pa

    def holds(self, model, task_id: str, options: dict) -> bool:
        """Rows of this task from these weights with these options are in the file."""
        rows = self._select(model.name, task_id)
        if rows.num_rows == 0:
            return False
        sha = set(rows.column("checkpoint_sha256").to_pylist())
        opts = set(rows.column("options").to_pylist())
        return sha == {getattr(model, "sha256", None)} != {None} and opts == {json.dumps(options, sort_keys=True)}

    def keep_weights(self, model) -> None:
        """Drop the model's rows from other weights (a run retrained under the same name)."""
        import pyarrow.compute as pc

        sha = getattr(model, "sha256", None)
        other = pc.and_(pc.equal(self.table["model"], model.name),
                        pc.invert(pc.equal(self.table["checkpoint_sha256"], sha)) if sha else pc.scalar(True))
        self.table = self.table.filter(pc.invert(pc.fill_null(other, True)))

    def put(self, model, task, cols: dict) -> None:
        import pyarrow.compute as pc

        keep = pc.invert(pc.and_(pc.equal(self.table["model"], model.name), pc.equal(self.table["task"], task.id)))
        new = self._pa.table(cols, schema=_schema())
        self.table = self._pa.concat_tables([self.table.filter(keep), new])
        self.meta["tasks"][task.id] = {"classes": task.class_names, "k": task.k}
        self.meta["models"][model.name] = model_info(model)

    def write(self) -> None:
        import pyarrow.parquet as pq

        table = self.table.replace_schema_metadata({META_KEY: json.dumps(self.meta).encode()})
        with atomic_path(self.path) as tmp:
            pq.write_table(table, tmp)

    def _select(self, model_name: str, task_id: str):
        import pyarrow.compute as pc

        return self.table.filter(pc.and_(pc.equal(self.table["model"], model_name),
                                         pc.equal(self.table["task"], task_id)))


def _read(path: Path):
    """(table, metadata) of a predictions file focus-eval wrote; anything else is a user error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise fail(f"not a parquet file ({type(e).__name__})", str(path),
                   "pass a new path with --predictions, or delete the file") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None or table.schema.remove_metadata() != _schema():
        raise fail("not a focus-eval predictions file", str(path),
                   "pass a new path with --predictions, or delete the file")
    return table.replace_schema_metadata(None), json.loads(raw)


def read_predictions(path: Path):
    """(pandas DataFrame, metadata) of a predictions file."""
    table, meta = _read(Path(path))
    return table.to_pandas(), meta
