"""Results file (docs/design.md §3.6), console table and bar chart of a focus-eval run.

`results.json`: {"model": …, "checkpoint": {"path", "sha256"}, "tasks": {"<task id>": {…}}, "mean": …,
"mean_tasks": […]}; a task that ran has `status: "ok"` and its metrics, a task without data
`{"status": "missing", "expected": "<path>"}`. A mean is only comparable over the same tasks, so
`mean_tasks` names them and a comparison of runs averages over the tasks every run has. A run of
several models writes one such file per model and a comparison file (`write_summary`).
"""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path

from focusclip.core.errors import fail
from focusclip.core.io import atomic_path, atomic_write_text


def ran(entry: dict) -> bool:
    return entry.get("status") == "ok"


def ran_tasks(tasks: dict) -> list[str]:
    """Ids of the tasks that ran with a usable top-k, in the file's order."""
    return [t for t, e in tasks.items() if ran(e) and not _nan(e.get("topk"))]


def mean_topk(tasks: dict, only: list[str] | None = None) -> float | None:
    """The mean of `topk` over the tasks that ran (of `only`, when given); None when none did."""
    ids = [t for t in ran_tasks(tasks) if only is None or t in only]
    return sum(tasks[t]["topk"] for t in ids) / len(ids) if ids else None


def shared_tasks(runs: list[dict]) -> list[str]:
    """The tasks every run has results for, in the first run's order."""
    sets = [set(ran_tasks(r["tasks"])) for r in runs]
    return [t for t in ran_tasks(runs[0]["tasks"]) if all(t in s for s in sets)]


def comparison(runs: list[dict]) -> dict:
    """What a table of several runs compares: the shared tasks, and per run (in order; two seeds may
    share a model name) its mean over them and the tasks it ran that are left out."""
    shared = shared_tasks(runs)
    return {"tasks": shared, "runs": [{"model": r["model"], "mean": mean_topk(r["tasks"], shared),
                                       "left_out": [t for t in ran_tasks(r["tasks"]) if t not in shared]}
                                      for r in runs]}


def read_results(path: Path) -> dict | None:
    """A results file, or None when there is none yet."""
    data = _read_json(path)
    if data is not None and not isinstance(data.get("tasks"), dict):
        fix = ("it compares several models: pass one of their results files" if "models" in data
               else "choose another -o")
        raise fail("not a focus-eval results file (no 'tasks')", str(path), fix)
    return data


def read_any(path: Path) -> dict | None:
    """A results file or a comparison of several models (`write_summary`), or None when there is none."""
    data = _read_json(path)
    if data is not None and not isinstance(data.get("tasks"), dict) and not isinstance(data.get("models"), list):
        raise fail("not a focus-eval results file (no 'tasks')", str(path), "choose another -o")
    return data


def read_others(path: Path) -> list[dict]:
    """The runs a `--compare` file holds: its own results, or each model's of a comparison file."""
    data = read_any(path)
    if data is None:
        raise fail("results file not found", str(path), "pass a results.json written by focus-eval")
    if isinstance(data.get("tasks"), dict):
        return [data]
    runs = []
    for m in data["models"]:
        other = read_results(path.parent / m["results"])
        if other is None:
            raise fail(f"the results file {m['results']} it names is gone", str(path),
                       "pass the models' results files instead")
        runs.append(other)
    return runs


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise fail("not a valid results JSON", str(path), "delete it or pass --force") from None
    if not isinstance(data, dict):
        raise fail("not a focus-eval results file (no 'tasks')", str(path), "choose another -o")
    return data


def results_paths(output: Path, names: list[str]) -> list[Path]:
    """Where each model's results go: `output` for one model; for several, `<stem>.<name>.json`
    beside it (the name made safe for a file name; a repeated name gets -2, -3, …)."""
    if len(names) == 1:
        return [output]
    paths, seen = [], Counter()
    for name in names:
        slug = re.sub(r"[^A-Za-z0-9._@+-]+", "_", name).strip("._") or "model"
        seen[slug] += 1
        paths.append(output.with_name(f"{output.stem}.{slug}{f'-{seen[slug]}' if seen[slug] > 1 else ''}.json"))
    return paths


def write_summary(path: Path, runs: list[tuple[Path, dict]], compare: tuple[Path, ...], cmp: dict) -> None:
    """The `-o` file of a run of several models: `{"models": [{"model", "results", "checkpoint", "mean",
    "mean_tasks"}], "comparison": {"files", "tasks", "runs"}}`; each model's results are in its own file,
    named relative to this one."""
    models = [{"model": r["model"], "results": os.path.relpath(p, path.parent), "checkpoint": r.get("checkpoint"),
               "mean": r["mean"], "mean_tasks": r["mean_tasks"]} for p, r in runs]
    files = [m["results"] for m in models] + [str(p) for p in compare]
    write_results(path, {"models": models, "comparison": {"files": files, **cmp}})


def write_results(path: Path, results: dict) -> None:
    """Atomic write; lists of numbers stay on one line so a 400×400 confusion matrix is 400 lines."""
    atomic_write_text(path, _dumps(results) + "\n")


def _dumps(obj, indent: int = 0) -> str:
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in obj):
            return "[" + ", ".join(_dumps(x) for x in obj) + "]"
        return "[\n" + ",\n".join(inner + _dumps(x, indent + 1) for x in obj) + f"\n{pad}]"
    if isinstance(obj, float) and not math.isfinite(obj):
        return "null"  # strict JSON has no NaN
    return json.dumps(obj, ensure_ascii=False)


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _pct(x) -> str:
    return "-" if _nan(x) else f"{100 * x:.2f}"


BLOCK = 44  # characters per model in the table


def format_table(runs: list[dict], order: dict[str, int]) -> str:
    """One row per task, one block of columns per model (the first run is this run's model).
    `order`: task id → k, in benchmark order. Percentages; top-k is the task's metric, with its
    95% interval. One run: its mean over the tasks it ran. Several: each one's mean over the tasks
    all of them ran, and a line naming the tasks left out of it."""
    ids = [t for t in order if any(t in r["tasks"] for r in runs)]
    labels = {t: f"{t} (top-{order[t]})" for t in ids}
    if len(runs) == 1:
        mean_label, means = f"mean top-k ({len(ran_tasks(runs[0]['tasks']))} tasks)", [runs[0].get("mean")]
    else:
        cmp = comparison(runs)
        mean_label, means = f"mean top-k ({len(cmp['tasks'])} shared tasks)", [c["mean"] for c in cmp["runs"]]
    width = max([len(v) for v in labels.values()] + [len(mean_label)])
    head = f"{'':<{width}}" + "".join(f" | {_short(r['model']):<{BLOCK}}" for r in runs)
    sub = f"{'task':<{width}}" + "".join(
        f" | {'n':>6} {'top-k':>7} {'95% CI':>13} {'top-1':>7} {'bal.acc':>7}" for _ in runs)
    rule = "-" * len(sub)
    lines = [head.rstrip(), sub, rule]
    lines += [f"{labels[t]:<{width}}" + "".join(f" | {_cell(r['tasks'].get(t))}" for r in runs) for t in ids]
    lines += [rule, f"{mean_label:<{width}}" + "".join(f" | {'':>6} {_pct(v):>7}".ljust(BLOCK + 3) for v in means)]
    if len(runs) > 1:
        out = {t for c in cmp["runs"] for t in c["left_out"]}
        lines.append("the mean is over the tasks every run has" +
                     (f"; left out: {', '.join(t for t in order if t in out)}" if out else ""))
    lines += _nonfinite_notes(runs, ids)
    return "\n".join(line.rstrip() for line in lines)


def _nonfinite_notes(runs: list[dict], ids: list[str]) -> list[str]:
    """A line per task whose images scored NaN/inf (skipped as 'non-finite score', not in n)."""
    notes = []
    for r in runs:
        for t in ids:
            count = (r["tasks"].get(t) or {}).get("skipped", {}).get("reasons", {}).get("non-finite score")
            if count:
                notes.append(f"{_short(r['model'])} {t}: {count} image(s) scored NaN/inf (non-finite score), not in n")
    return notes


def _cell(entry: dict | None) -> str:
    if entry is None:
        return f"{'':<{BLOCK}}"
    if not ran(entry):
        return f"{entry.get('status', '?'):>14}".ljust(BLOCK)
    lo, hi = entry["ci95"]
    ci = f"{_pct(lo)}-{_pct(hi)}"
    return (f"{entry['n']:>6} {_pct(entry['topk']):>7} {ci:>13} {_pct(entry['top1']):>7} "
            f"{_pct(entry['balanced_accuracy']):>7}")


def _short(name: str) -> str:
    return name if len(name) <= BLOCK else "…" + name[-(BLOCK - 1):]


def plot_results(runs: list[dict], order: dict[str, int], path: Path) -> Path:
    """Bar chart PNG: top-k per task that ran, one bar per model, 95% bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ids = [t for t in order if any(ran(r["tasks"].get(t, {})) for r in runs)]  # order: id → k
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(ids) * max(1, len(runs)) + 2), 4.5))
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(ids))
    for j, r in enumerate(runs):
        vals, err = [], [[], []]
        for t in ids:
            e = r["tasks"].get(t, {})
            v = 100 * e["topk"] if ran(e) else 0.0
            lo, hi = (100 * c for c in e["ci95"]) if ran(e) else (v, v)
            vals.append(v)
            err[0].append(max(0.0, v - lo))
            err[1].append(max(0.0, hi - v))
        ax.bar(x + (j - (len(runs) - 1) / 2) * width, vals, width, yerr=err, capsize=3, label=r["model"])
    ax.set_xticks(x, [f"{t} (top-{order[t]})" for t in ids], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Zero-shot accuracy, 95% bootstrap intervals")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
