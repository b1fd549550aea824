"""`run_eval`: the focus-eval stage. Model loaded once; each task read, scored and written in turn.

Resumable: results.json is rewritten atomically after every task, and a rerun keeps the tasks it
already holds for the same weights (`checkpoint.sha256` of model.safetensors) and options (`force`
redoes them); other weights behind the same name (a run retrained into its folder) start the file
afresh. A task whose dataset is absent is recorded as missing and the others still run.
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from focusclip.core.devices import resolve_device
from focusclip.core.errors import fail
from focusclip.core.report import Report, report_path_for
from focusclip.core.preflight import writable_file
from focusclip.eval.metrics import METRIC_VERSION, classification_metrics, image_blind_levels
from focusclip.eval.model import EvalModel, load_model
from focusclip.eval.readers import MissingData, read_for_task
from focusclip.eval.readers.base import DatasetSplit, Sample, norm_name
from focusclip.eval.report import (comparison, format_table, mean_topk, plot_results, ran, ran_tasks, read_results,
                                   write_results)
from focusclip.eval.tasks import Task, all_tasks, select_tasks, task_ids
from focusclip.eval.predictions import PredictionsFile, task_rows
from focusclip.eval.zeroshot import EmbeddingCache, build_classifier, score_rows


def default_workers() -> int:
    """Decoding processes: half the cores (at most 8), so the encoder keeps the other half on a CPU
    run (on 2 cores: 1 worker + 1 encoder thread beats 2 + 1 oversubscribed)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class EvalOptions:
    data_root: Path
    output: Path = Path("results.json")
    checkpoint: str | Path | None = None      # one model: a checkpoint or a dual encoder (eval.model)
    hf_clip: str | None = None                 # hub id or folder
    revision: str | None = None                # of the --hf-clip hub id
    resize: str | None = None                  # override the checkpoint's training geometry
    tasks: tuple[str, ...] = ()
    batch_size: int = 64
    workers: int = default_workers()
    device: str = "auto"
    force: bool = False
    limit: int | None = None
    ensemble: bool = False
    compare: tuple[Path, ...] = ()
    plot: bool = True
    precision: str = "auto"                    # auto: fp16 autocast on CUDA, fp32 on the CPU; or fp32
    predictions: Path | None = None            # parquet of every image's ranked classes (eval.predictions)


# A task stops the run when more than this share of the images it read scored NaN/inf: a few can be
# one odd image, a twentieth is the model (fp16 overflow, damaged weights). Below it they are counted.
NONFINITE_LIMIT = 0.05
NONFINITE = "non-finite score"


def task_samples(task: Task, split: DatasetSplit,
                 limit: int | None) -> tuple[list[Sample], list[list[int]], Counter]:
    """The reader's samples with labels mapped to task indices (by normalised name), and the
    reader's skips plus the samples whose label is not a class of the task. `limit` keeps an
    evenly spaced subset, so a quick run still spans label-sorted files like Kinetics."""
    index = task.label_index()
    skipped = Counter(split.skipped)
    samples, labels = [], []
    for s in split.samples:
        idx = sorted({index[n] for n in map(norm_name, s.labels) if n in index})
        if not idx:
            skipped["label not a class of the task" if s.labels else "no label"] += 1
            continue
        samples.append(s)
        labels.append(idx)
    if limit is not None and len(samples) > limit:
        keep = [i * len(samples) // limit for i in range(limit)]
        samples, labels = [samples[i] for i in keep], [labels[i] for i in keep]
    return samples, labels, skipped


def read_task_data(task: Task, data_root: Path) -> DatasetSplit | MissingData:
    """The task's dataset split, or the MissingData that says where it was expected."""
    try:
        return read_for_task(task, data_root)
    except MissingData as e:
        return e


def evaluate_task(task: Task, model: EvalModel, opts: EvalOptions, device, log: Callable = print,
                  cache: EmbeddingCache | None = None, data: DatasetSplit | MissingData | None = None,
                  predictions: PredictionsFile | None = None) -> dict:
    """One task → its results entry (metrics, or `missing` with the path expected). `cache` holds the
    previous task's image embeddings, reused where this task scores the same images; `data` is the
    task's split when it was read already (`read_task_data`); `predictions` gets every sample's row."""
    t0 = time.perf_counter()
    split = data if data is not None else read_task_data(task, opts.data_root)
    if isinstance(split, MissingData):
        return {"status": "missing", "expected": split.expected}
    samples, labels, skipped = task_samples(task, split, opts.limit)
    base = {"dataset": task.dataset, "split": task.split, "classes": task.class_names,
            "source": split.source, "templates": task.templates(opts.ensemble),
            "options": _fingerprint(opts, model)}
    if not samples:
        return {"status": "empty", **base, "skipped": _skipped(skipped)}
    classifier = build_classifier(model, task.prompts(opts.ensemble)).to(device)   # [D, C]
    cache = cache if cache is not None else EmbeddingCache()
    t1, reused_before = time.perf_counter(), cache.reused
    scores, why = score_rows(model, samples, classifier, batch_size=opts.batch_size, workers=opts.workers,
                             device=device, progress=task.id, cache=cache, precision=opts.precision)
    seconds = time.perf_counter() - t1
    bad = Counter(w for w in why if w)
    if predictions is not None:
        predictions.put(model, task, task_rows(model, task, samples, labels, scores, why, base["options"]))
    reused = cache.reused - reused_before
    usable = np.isfinite(scores).all(axis=1)
    skipped.update(bad)
    read = len(samples) - sum(bad.values())             # unusable images' rows are NaN (score_samples)
    nonfinite = read - int(usable.sum())
    if nonfinite:
        skipped[NONFINITE] += nonfinite
        _check_finite(task, model, nonfinite, read, opts, log)
    if not usable.any():
        return {"status": "empty", **base, "skipped": _skipped(skipped)}
    metrics = classification_metrics(scores[usable], [lab for lab, u in zip(labels, usable) if u], task.k)
    log(f"{task.id}: top-{task.k} {100 * metrics['topk']:.2f}% on {metrics['n']} images "
        f"({len(samples) / max(seconds, 1e-9):.0f} img/s" + (f", {reused} embeddings reused)" if reused else ")"))
    # what a model that never looks at the image scores here (per-class label counts = confusion rows)
    levels = image_blind_levels(np.asarray(metrics["confusion"]).sum(axis=1), task.k)
    return {"status": "ok", **base, **metrics, "levels": levels, "skipped": _skipped(skipped),
            "seconds": round(time.perf_counter() - t0, 3),
            "images_per_s": round(len(samples) / max(seconds, 1e-9), 1)}


def _check_finite(task: Task, model: EvalModel, nonfinite: int, read: int, opts: EvalOptions, log: Callable) -> None:
    """Images whose scores hold NaN/inf are counted under NONFINITE; past NONFINITE_LIMIT of the
    images read, the model is broken for this task and the run stops with the likely cause."""
    what = f"{nonfinite} of {read} images ({100 * nonfinite / max(read, 1):.1f}%) scored NaN/inf with {model.name}"
    if nonfinite <= NONFINITE_LIMIT * read:
        log(f"{task.id}: {what}; counted as '{NONFINITE}', not in n")
        return
    if opts.precision == "fp16":
        cause = ("likely an fp16 overflow in the encoder: rerun with --precision fp32; if the scores stay "
                 "NaN, the weights are damaged")
    else:
        cause = ("likely damaged weights (NaN/inf in the weights file) or a model that overflows in fp32: "
                 "check or replace the checkpoint")
    raise fail(f"{what}, more than {100 * NONFINITE_LIMIT:.0f}%", task.id, cause)


def _reusable(old: dict | None, opts: EvalOptions, model: EvalModel) -> bool:
    """A stored task result of these weights that a rerun keeps (same options and metric definitions,
    not --force); the results it comes from were kept by `_start_results` only for the same sha256.
    An entry without `metric_version` was computed by version 1 (eval.metrics)."""
    return (bool(old) and ran(old) and old.get("options") == _fingerprint(opts, model)
            and old.get("metric_version", 1) == METRIC_VERSION and not opts.force)


def _check_data(tasks: list[Task], data: dict, data_root: Path) -> None:
    """No dataset for any selected task, and no stored result either, is no input: a user error
    before the model loads. (Some tasks missing is fine: they are recorded as missing, the others
    run; a rerun whose tasks are all stored has nothing left to do, and succeeds.)"""
    if len(data) == len(tasks) and all(isinstance(d, MissingData) for d in data.values()):
        expected = sorted({os.path.relpath(d.expected, data_root) for d in data.values()})
        shown = ", ".join(expected[:2]) + (f" and {len(expected) - 2} more" if len(expected) > 2 else "")
        raise fail(f"no dataset of the {len(tasks)} selected task(s) is here (expected {shown})", str(data_root),
                   "pass the folder holding the datasets in their official layouts (docs/eval.md), or --task IDs")


def _skipped(c: Counter) -> dict:
    return {"count": int(sum(c.values())), "reasons": dict(sorted(c.items()))}


def _fingerprint(opts: EvalOptions, model: EvalModel) -> dict:
    """What makes two results of the same weights comparable; a stored task is reused only if equal."""
    return {"limit": opts.limit, "ensemble": opts.ensemble, "resize": getattr(model, "resize", None),
            "precision": opts.precision}


def _checkpoint(model: EvalModel) -> dict:
    path = getattr(model, "path", None)
    return {"path": str(path) if path is not None else None, "sha256": getattr(model, "sha256", None)}


def _start_results(opts: EvalOptions, model: EvalModel, log: Callable) -> dict:
    """The results to extend: the file's when it holds these very weights, else a fresh start."""
    fresh = {"model": model.name, "checkpoint": _checkpoint(model), "tasks": {}, "mean": None, "mean_tasks": []}
    old = read_results(opts.output)
    if old is None or (opts.force and old.get("model") != model.name):
        return fresh
    if old.get("model") != model.name:
        raise fail(f"holds results of model {old.get('model')!r}, not {model.name!r}", str(opts.output),
                   "choose another -o, or pass --force to start it again")
    was, now = (old.get("checkpoint") or {}).get("sha256"), fresh["checkpoint"]["sha256"]
    if now is None or was != now:
        if old["tasks"]:
            log(f"{opts.output}: its {len(old['tasks'])} task(s) were computed from other weights "
                f"(sha256 {str(was)[:12]}, now {str(now)[:12]}): every task is computed again")
        return fresh
    return {**old, "checkpoint": fresh["checkpoint"]}


def run_eval(opts: EvalOptions, model: EvalModel | None = None, log: Callable = None) -> Report:
    """Evaluate the selected tasks; writes results.json, results.png and results.report.json."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    tasks = select_tasks(list(opts.tasks))
    if not Path(opts.data_root).is_dir():
        raise fail("data root not found", str(opts.data_root), "pass the folder holding the datasets")
    for path in (opts.output, opts.output.with_suffix(".png"), report_path_for(opts.output)):
        writable_file(path)   # before the model loads and any task is scored
    if opts.predictions is not None:
        writable_file(opts.predictions, "--predictions")
        predictions = PredictionsFile(opts.predictions)      # an existing file must be one focus-eval wrote
    else:
        predictions = None
    others = [_read_other(p) for p in opts.compare]
    report = Report("eval", {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()})
    device = resolve_device(opts.device)
    # the precision the encoders run at: part of every result's options
    opts = replace(opts, precision="fp16" if device.type == "cuda" and opts.precision == "auto" else "fp32")
    stored = (read_results(opts.output) or {}).get("tasks", {})
    # Read before the model loads, so no dataset at all fails in seconds. A stored result is only
    # reusable for the same weights and options, which needs the model; a task stored but then
    # recomputed reads its data when it runs.
    data = {t.id: read_task_data(t, opts.data_root) for t in tasks if opts.force or not ran(stored.get(t.id) or {})}
    _check_data(tasks, data, opts.data_root)
    model = model or load_model(opts.checkpoint, opts.hf_clip, device, opts.resize, opts.revision)
    results = _start_results(opts, model, log)
    if predictions is not None:
        predictions.keep_weights(model)
    cache = EmbeddingCache()   # image embeddings of the last task evaluated, for the next one
    for task in tasks:
        if _reusable(results["tasks"].get(task.id), opts, model) and (
                predictions is None or predictions.holds(model, task.id, _fingerprint(opts, model))):
            report.count("tasks_reused")
            continue
        t0 = time.perf_counter()
        entry = evaluate_task(task, model, opts, device, log, cache, data.pop(task.id, None), predictions)
        report.time(task.id, time.perf_counter() - t0)
        report.count(f"tasks_{entry['status']}")
        if entry["status"] == "missing":
            log(f"{task.id}: missing, expected {entry['expected']}")
        for reason, n in entry.get("skipped", {}).get("reasons", {}).items():
            report.skip(f"{task.id}: {reason}", n=n)
        report.count("images_scored", entry.get("n", 0))
        results["tasks"][task.id] = entry
        results["tasks"] = {t: results["tasks"][t] for t in _ordered(results["tasks"])}
        _set_mean(results)
        if any(ran(e) for e in results["tasks"].values()):   # a results file only once it holds results
            write_results(opts.output, results)
            if predictions is not None:
                predictions.write()
    if not any(ran(e) for e in results["tasks"].values()):
        raise fail("no task had a usable sample", str(opts.data_root),
                   "check the datasets' layouts (docs/eval.md); the skip reasons are per task in the log")
    _set_mean(results)
    if others:
        results["comparison"] = {"files": [str(p) for p in opts.compare], **comparison([results, *others])}
    else:
        results.pop("comparison", None)
    write_results(opts.output, results)
    if cache.reused:
        report.count("images_reused", cache.reused)
    _summarise(results, others, opts, report)
    return report


def _set_mean(results: dict) -> None:
    """`mean` over the tasks that ran, and `mean_tasks` naming them (a mean of other tasks is
    another number)."""
    results["mean"] = mean_topk(results["tasks"])
    results["mean_tasks"] = ran_tasks(results["tasks"])


def _summarise(results: dict, others: list[dict], opts: EvalOptions, report: Report) -> None:
    runs = [results, *others]
    order = {t.id: t.k for t in all_tasks()}
    print(format_table(runs, order))
    if opts.plot and any(ran(e) for e in results["tasks"].values()):
        report.extra["plot"] = str(plot_results(runs, order, opts.output.with_suffix(".png")))
    report.extra["results"] = str(opts.output)
    report.extra["mean"] = results["mean"]
    report.extra["mean_tasks"] = results["mean_tasks"]
    if "comparison" in results:
        report.extra["comparison"] = results["comparison"]
    report.save(report_path_for(opts.output))


def _ordered(tasks: dict) -> list[str]:
    order = task_ids()
    return sorted(tasks, key=lambda t: (order.index(t) if t in order else len(order), t))


def _read_other(path: Path) -> dict:
    other = read_results(Path(path))
    if other is None:
        raise fail("results file not found", str(path), "pass a results.json written by focus-eval")
    return other
