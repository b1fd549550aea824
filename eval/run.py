"""`run_eval`: the focus-eval stage. Models loaded once; each task read once and scored by every model
in one pass over its images (decoded once); each model's results written in turn.

Resumable: a model's results file is rewritten atomically after every task, and a rerun keeps the
tasks it already holds for the same weights (`checkpoint.sha256` of model.safetensors), options and
metric definitions (`force` redoes them); other weights behind the same name (a run retrained into its
folder) start the file afresh. A task whose dataset is absent is recorded as missing and the others run.
One model writes its results to `-o`; several write `<stem>.<model>.json` each beside it and `-o`
is the comparison (eval.report.write_summary).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from focusclip.core.devices import resolve_device
from focusclip.core.errors import fail
from focusclip.core.preflight import writable_file
from focusclip.core.report import Report, report_path_for
from focusclip.eval.metrics import METRIC_VERSION, classification_metrics, image_blind_levels
from focusclip.eval.model import EvalModel, ModelSpec, load_models
from focusclip.eval.predictions import PredictionsFile, task_rows
from focusclip.eval.readers import MissingData, read_for_task
from focusclip.eval.readers.base import DatasetSplit, Sample, norm_name
from focusclip.eval.report import (comparison, format_table, mean_topk, plot_results, ran, ran_tasks, read_any,
                                   read_others, read_results, results_paths, write_results, write_summary)
from focusclip.eval.tasks import Task, all_tasks, load_task_file, select_tasks, task_ids
from focusclip.eval.zeroshot import EmbeddingCache, build_classifier, score_many


def default_workers() -> int:
    """Decoding processes: half the cores (at most 8), so the encoder keeps the other half on a CPU
    run (on 2 cores: 1 worker + 1 encoder thread beats 2 + 1 oversubscribed)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class EvalOptions:
    data_root: Path | None                     # the datasets of the built-in tasks (None: only task files)
    output: Path = Path("results.json")
    checkpoint: str | Path | None = None      # one model: a checkpoint or a dual encoder (eval.model)
    hf_clip: str | tuple[str, ...] | None = None   # dual encoders named hf-clip:<id> (hub id or folder)
    models: tuple[str, ...] = ()               # more models, each a checkpoint or a dual encoder
    revision: str | None = None                # of the dual encoder's hub id
    resize: str | None = None                  # override the checkpoints' training geometry
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
    task_files: tuple[Path, ...] = ()          # the user's own tasks (eval.tasks.load_task_file)


# A task stops the run when more than this share of the images it read scored NaN/inf: a few can be
# one odd image, a twentieth is the model (fp16 overflow, damaged weights). Below it they are counted.
NONFINITE_LIMIT = 0.05
NONFINITE = "non-finite score"


def model_specs(opts: EvalOptions) -> list[ModelSpec]:
    """The models the options name, in order: the CHECKPOINT argument and `models`, then --hf-clip."""
    specs = [ModelSpec(str(opts.checkpoint))] if opts.checkpoint is not None else []
    specs += [ModelSpec(str(m)) for m in opts.models]
    clips = (opts.hf_clip,) if isinstance(opts.hf_clip, str) else tuple(opts.hf_clip or ())
    return specs + [ModelSpec(str(c), hf_clip=True) for c in clips]


def selected_tasks(opts: EvalOptions) -> list[Task]:
    """The built-in tasks `--task` names (all 12 when neither --task nor --task-file is given), then
    the task files' tasks in the order given; an id twice is an error."""
    builtin = select_tasks(list(opts.tasks)) if opts.tasks or not opts.task_files else []
    own = [load_task_file(Path(p)) for p in opts.task_files]
    seen = set()
    for path, t in zip(opts.task_files, own):
        if t.id in seen:
            raise fail(f"task id {t.id!r} is given twice", str(path), "give each task file its own id")
        seen.add(t.id)
    return builtin + own


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


def read_task_data(task: Task, data_root: Path | None) -> DatasetSplit | MissingData:
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
    return evaluate_models(task, [model], opts, device, log, [cache or EmbeddingCache()], data, predictions)[0]


def evaluate_models(task: Task, models: list[EvalModel], opts: EvalOptions, device, log: Callable,
                    caches: list[EmbeddingCache], data: DatasetSplit | MissingData | None = None,
                    predictions: PredictionsFile | None = None) -> list[dict]:
    """`evaluate_task` for several models at once: the task's images are decoded once and scored by
    every model (`score_many`); one entry per model, each what the model gets alone."""
    t0 = time.perf_counter()
    split = data if data is not None else read_task_data(task, opts.data_root)
    if isinstance(split, MissingData):
        return [{"status": "missing", "expected": split.expected} for _ in models]
    samples, labels, skipped = task_samples(task, split, opts.limit)
    bases = [{"dataset": task.dataset, "split": task.split, "classes": task.class_names, "source": split.source,
              "templates": task.templates(opts.ensemble), "options": _fingerprint(opts, m, task)} for m in models]
    if not samples:
        return [{"status": "empty", **base, "skipped": _skipped(skipped)} for base in bases]
    classifiers = [build_classifier(m, task.prompts(opts.ensemble)).to(device) for m in models]   # [D_m, C]
    t1, reused_before = time.perf_counter(), [c.reused for c in caches]
    scored = score_many(models, samples, classifiers, caches=caches, batch_size=opts.batch_size,
                        workers=opts.workers, device=device, progress=task.id, precision=opts.precision)
    seconds = time.perf_counter() - t1
    entries = []
    for m, (model, base, (scores, why)) in enumerate(zip(models, bases, scored)):
        if predictions is not None:
            predictions.put(model, task, task_rows(model, task, samples, labels, scores, why, base["options"]))
        where = f"{model.name} {task.id}" if len(models) > 1 else task.id
        entry = _entry(task, model, opts, samples, labels, Counter(skipped), scores, why, base, where, log)
        if ran(entry):
            reused = caches[m].reused - reused_before[m]
            log(f"{where}: top-{task.k} {100 * entry['topk']:.2f}% on {entry['n']} images "
                f"({len(samples) / max(seconds, 1e-9):.0f} img/s" + (f", {reused} embeddings reused)" if reused else ")"))
            entry.update(seconds=round(time.perf_counter() - t0, 3),
                         images_per_s=round(len(samples) / max(seconds, 1e-9), 1))
        entries.append(entry)
    return entries


def _entry(task: Task, model: EvalModel, opts: EvalOptions, samples: list, labels: list, skipped: Counter,
           scores: np.ndarray, why: list[str], base: dict, where: str, log: Callable) -> dict:
    """One model's results entry of a task from its scores [N, C] and per-row reasons."""
    usable = np.isfinite(scores).all(axis=1)
    bad = Counter(w for w in why if w)
    skipped.update(bad)
    read = len(samples) - sum(bad.values())             # unusable images' rows are NaN (score_many)
    nonfinite = read - int(usable.sum())
    if nonfinite:
        skipped[NONFINITE] += nonfinite
        _check_finite(task, model, nonfinite, read, opts, where, log)
    if not usable.any():
        return {"status": "empty", **base, "skipped": _skipped(skipped)}
    metrics = classification_metrics(scores[usable], [lab for lab, u in zip(labels, usable) if u], task.k)
    # what a model that never looks at the image scores here (per-class label counts = confusion rows)
    levels = image_blind_levels(np.asarray(metrics["confusion"]).sum(axis=1), task.k)
    return {"status": "ok", **base, **metrics, "levels": levels, "skipped": _skipped(skipped)}


def _check_finite(task: Task, model: EvalModel, nonfinite: int, read: int, opts: EvalOptions, where: str,
                  log: Callable) -> None:
    """Images whose scores hold NaN/inf are counted under NONFINITE; past NONFINITE_LIMIT of the
    images read, the model is broken for this task and the run stops with the likely cause."""
    what = f"{nonfinite} of {read} images ({100 * nonfinite / max(read, 1):.1f}%) scored NaN/inf with {model.name}"
    if nonfinite <= NONFINITE_LIMIT * read:
        log(f"{where}: {what}; counted as '{NONFINITE}', not in n")
        return
    if opts.precision == "fp16":
        cause = ("likely an fp16 overflow in the encoder: rerun with --precision fp32; if the scores stay "
                 "NaN, the weights are damaged")
    else:
        cause = ("likely damaged weights (NaN/inf in the weights file) or a model that overflows in fp32: "
                 "check or replace the checkpoint")
    raise fail(f"{what}, more than {100 * NONFINITE_LIMIT:.0f}%", task.id, cause)


def _reusable(old: dict | None, opts: EvalOptions, model: EvalModel, task: Task) -> bool:
    """A stored task result of these weights that a rerun keeps (same options and metric definitions,
    not --force); the results it comes from were kept by `_start_results` only for the same sha256.
    An entry without `metric_version` was computed by version 1 (eval.metrics)."""
    return (bool(old) and ran(old) and old.get("options") == _fingerprint(opts, model, task)
            and old.get("metric_version", 1) == METRIC_VERSION and not opts.force)


def _check_data(tasks: list[Task], data: dict, data_root: Path | None) -> None:
    """No dataset for any selected task, and no stored result either, is no input: a user error
    before the model loads. (Some tasks missing is fine: they are recorded as missing, the others
    run; a rerun whose tasks are all stored has nothing left to do, and succeeds.)"""
    if len(data) == len(tasks) and all(isinstance(d, MissingData) for d in data.values()):
        expected = sorted({os.path.relpath(d.expected, data_root) if data_root else d.expected
                           for d in data.values()})
        shown = ", ".join(expected[:2]) + (f" and {len(expected) - 2} more" if len(expected) > 2 else "")
        raise fail(f"no dataset of the {len(tasks)} selected task(s) is here (expected {shown})", str(data_root or "--task-file"),
                   "pass the folder holding the datasets in their official layouts (docs/eval.md), or --task IDs")


def _log_missing(data: dict, log: Callable) -> None:
    """One line per absent dataset file, naming every task it serves (the table's rows say `missing`)."""
    tasks: dict[str, list[str]] = {}
    for task_id, d in data.items():
        if isinstance(d, MissingData):
            tasks.setdefault(d.expected, []).append(task_id)
    for expected, ids in tasks.items():
        log(f"missing {expected}: {', '.join(ids)} not scored")


def _skipped(c: Counter) -> dict:
    return {"count": int(sum(c.values())), "reasons": dict(sorted(c.items()))}


def _fingerprint(opts: EvalOptions, model: EvalModel, task: Task) -> dict:
    """What makes two results of the same weights comparable; a stored task is reused only if equal.
    A task file can change under the same id: its definition's hash is part of its results."""
    out = {"limit": opts.limit, "ensemble": opts.ensemble, "resize": getattr(model, "resize", None),
           "precision": opts.precision}
    if task.id not in task_ids():
        out["task_sha256"] = hashlib.sha256(json.dumps(asdict(task), sort_keys=True).encode()).hexdigest()
    return out


def _checkpoint(model: EvalModel) -> dict:
    path = getattr(model, "path", None)
    return {"path": str(path) if path is not None else None, "sha256": getattr(model, "sha256", None)}


def _start_results(opts: EvalOptions, model: EvalModel, path: Path, log: Callable) -> dict:
    """The results to extend: the file's when it holds these very weights, else a fresh start."""
    fresh = {"model": model.name, "checkpoint": _checkpoint(model), "tasks": {}, "mean": None, "mean_tasks": []}
    old = read_results(path)
    if old is None or (opts.force and old.get("model") != model.name):
        return fresh
    if old.get("model") != model.name:
        raise fail(f"holds results of model {old.get('model')!r}, not {model.name!r}", str(path),
                   "choose another -o, or pass --force to start it again")
    was, now = (old.get("checkpoint") or {}).get("sha256"), fresh["checkpoint"]["sha256"]
    if now is None or was != now:
        if old["tasks"]:
            log(f"{path}: its {len(old['tasks'])} task(s) were computed from other weights "
                f"(sha256 {str(was)[:12]}, now {str(now)[:12]}): every task is computed again")
        return fresh
    return {**old, "checkpoint": fresh["checkpoint"]}


@dataclass
class ModelRun:
    """One model of the run: where its results go, what they hold, and its last task's embeddings."""
    model: EvalModel
    output: Path
    results: dict
    cache: EmbeddingCache = field(default_factory=EmbeddingCache)


def run_eval(opts: EvalOptions, model: EvalModel | None = None, log: Callable = None,
             models: list[EvalModel] | None = None) -> Report:
    """Evaluate the selected tasks with every model; writes the results file(s), results.png and
    results.report.json. `model`/`models`: already loaded models in place of the options' (tests)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    given = models or ([model] if model is not None else None)
    specs = [] if given else model_specs(opts)
    if not given and not specs:
        raise fail("give one model or more: a CHECKPOINT, a dual encoder or --hf-clip ID_OR_DIR", "focus-eval",
                   "name each model to evaluate; they are scored in one pass")
    several = len(given or specs) > 1
    tasks = selected_tasks(opts)
    if any(t.id in task_ids() for t in tasks) and (opts.data_root is None or not Path(opts.data_root).is_dir()):
        raise fail("data root not found", str(opts.data_root or "--data-root"), "pass the folder holding the datasets")
    for path in (opts.output, opts.output.with_suffix(".png"), report_path_for(opts.output)):
        writable_file(path)   # before the model loads and any task is scored
    if several and "tasks" in (read_any(opts.output) or {}):
        raise fail("holds one model's results, and several models write their comparison there", str(opts.output),
                   "choose another -o for the comparison")
    predictions = None
    if opts.predictions is not None:
        writable_file(opts.predictions, "--predictions")
        predictions = PredictionsFile(opts.predictions)      # an existing file must be one focus-eval wrote
    others = [r for p in opts.compare for r in read_others(Path(p))]
    report = Report("eval", {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()})
    device = resolve_device(opts.device)
    # the precision the encoders run at: part of every result's options
    opts = replace(opts, precision="fp16" if device.type == "cuda" and opts.precision == "auto" else "fp32")
    # Read before the models load, so no dataset at all fails in seconds. A stored result is only
    # reusable for the same weights and options, which needs the model; a task stored but then
    # recomputed reads its data when it runs.
    stored = {} if several else (read_results(opts.output) or {}).get("tasks", {})
    data = {t.id: read_task_data(t, opts.data_root) for t in tasks if opts.force or not ran(stored.get(t.id) or {})}
    _check_data(tasks, data, opts.data_root)
    _log_missing(data, log)
    loaded = given or load_models(specs, device, opts.resize, opts.revision)
    paths = results_paths(opts.output, [m.name for m in loaded])
    for path in paths:
        writable_file(path)
    runs = [ModelRun(m, p, _start_results(opts, m, p, log)) for m, p in zip(loaded, paths)]
    if predictions is not None:
        for r in runs:
            predictions.keep_weights(r.model)
    for task in tasks:
        _run_task(task, runs, opts, device, log, data, predictions, report, several)
    if not any(ran(e) for r in runs for e in r.results["tasks"].values()):
        raise fail("no task had a usable sample", str(opts.data_root),
                   "check the datasets' layouts (docs/eval.md); the skip reasons are per task in the log")
    _finish(runs, others, opts, report, several, tasks)
    return report


def _run_task(task: Task, runs: list[ModelRun], opts: EvalOptions, device, log: Callable, data: dict,
              predictions: PredictionsFile | None, report: Report, several: bool) -> None:
    """Score `task` with every model that has no reusable result of it, in one pass, and record it."""
    todo = [r for r in runs if not (_reusable(r.results["tasks"].get(task.id), opts, r.model, task) and (
        predictions is None or predictions.holds(r.model, task.id, _fingerprint(opts, r.model, task))))]
    if len(todo) < len(runs):
        report.count("tasks_reused", len(runs) - len(todo))
    if not todo:
        return
    t0 = time.perf_counter()
    read = data.pop(task.id, None)
    entries = evaluate_models(task, [r.model for r in todo], opts, device, log, [r.cache for r in todo],
                              read, predictions)
    report.time(task.id, time.perf_counter() - t0)
    if entries[0]["status"] == "missing" and read is None:   # read only now: not in _log_missing's lines
        log(f"{task.id}: missing, expected {entries[0]['expected']}")
    for r, entry in zip(todo, entries):
        report.count(f"tasks_{entry['status']}")
        prefix = f"{r.model.name}: " if several else ""
        for reason, n in entry.get("skipped", {}).get("reasons", {}).items():
            report.skip(f"{prefix}{task.id}: {reason}", n=n)
        report.count("images_scored", entry.get("n", 0))
        r.results["tasks"][task.id] = entry
        r.results["tasks"] = {t: r.results["tasks"][t] for t in _ordered(r.results["tasks"])}
        _set_mean(r.results)
        if any(ran(e) for e in r.results["tasks"].values()):   # a results file only once it holds results
            write_results(r.output, r.results)
    if predictions is not None and any(ran(e) for r in todo for e in r.results["tasks"].values()):
        predictions.write()


def _finish(runs: list[ModelRun], others: list[dict], opts: EvalOptions, report: Report, several: bool,
            tasks: list[Task]) -> None:
    """Final means and comparison, every results file written, then the table, chart and report."""
    for r in runs:
        _set_mean(r.results)
    compared = [r.results for r in runs] + others
    if several:
        for r in runs:
            r.results.pop("comparison", None)
            write_results(r.output, r.results)
        record = comparison(compared)
        write_summary(opts.output, [(r.output, r.results) for r in runs], opts.compare, record)
        report.extra["results_files"] = [str(r.output) for r in runs]
    else:
        results = runs[0].results
        if others:
            results["comparison"] = record = {"files": [str(p) for p in opts.compare], **comparison(compared)}
        else:
            results.pop("comparison", None)
            record = None
        write_results(opts.output, results)
    reused = sum(r.cache.reused for r in runs)
    if reused:
        report.count("images_reused", reused)
    _summarise(compared, opts, report, record, tasks)


def _set_mean(results: dict) -> None:
    """`mean` over the tasks that ran, and `mean_tasks` naming them (a mean of other tasks is
    another number)."""
    results["mean"] = mean_topk(results["tasks"])
    results["mean_tasks"] = ran_tasks(results["tasks"])


def _summarise(runs: list[dict], opts: EvalOptions, report: Report, record: dict | None,
               tasks: list[Task]) -> None:
    order = {t.id: t.k for t in [*all_tasks(), *tasks]}    # benchmark order, then the task files'
    order.update({t: e.get("k", 1) for r in runs for t, e in r["tasks"].items() if t not in order})
    print(format_table(runs, order))
    if opts.plot and any(ran(e) for r in runs for e in r["tasks"].values()):
        report.extra["plot"] = str(plot_results(runs, order, opts.output.with_suffix(".png")))
    report.extra["results"] = str(opts.output)
    report.extra["mean"] = runs[0]["mean"]
    report.extra["mean_tasks"] = runs[0]["mean_tasks"]
    if record is not None:
        report.extra["comparison"] = record
    report.save(report_path_for(opts.output))


def _ordered(tasks: dict) -> list[str]:
    order = task_ids()
    return sorted(tasks, key=lambda t: (order.index(t) if t in order else len(order), t))
