"""The demo's report folder: heatmap overlays, loss curves, the results chart and the CLIP-vs-FocusCLIP
table, built from the files the stages wrote (whatever of them exist).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from focusclip.core.io import atomic_path, atomic_write_text, read_jsonl
from focusclip.data.skeleton import LIMBS
from focusclip.pipeline.demo.layout import Layout, results_path

MODELS = (("clip", "CLIP"), ("focusclip", "FocusCLIP"))


def build_report(lay: Layout, echo: Callable[[str], None] = print) -> list[Path]:
    """Write what the finished stages allow into `lay.report`; print the table and where to look."""
    lay.report.mkdir(parents=True, exist_ok=True)
    made = [p for p in (heatmap_overlays(lay), loss_curves(lay), results_chart(lay)) if p]
    table = results_table(lay)
    if table:
        atomic_write_text(lay.report / "results.md", table + "\n")
        made.append(lay.report / "results.md")
        echo("\n" + table)
    echo(f"\nDone. Look at:\n  {lay.report}/  ({', '.join(p.name for p in made) or 'nothing yet'})")
    for model, _ in MODELS:
        if results_path(lay, model).is_file():
            echo(f"  {results_path(lay, model)}")
    echo(f"  {lay.logs}/  (one log per step)\n  {lay.out / 'report.json'}  (what each step did)")
    return made


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def heatmap_overlays(lay: Layout, n: int = 6) -> Path | None:
    """Images with their ROI heatmap in colour and the skeletons, for the first `n` images with people."""
    import cv2

    if not (lay.annotations.is_file() and (lay.heatmaps / "report.json").is_file()):
        return None
    tiles = []
    for rec in read_jsonl(lay.annotations):
        img = cv2.imread(str(lay.images / rec["image"]))
        heat = cv2.imread(str(lay.heatmaps / (Path(rec["image"]).stem + ".png")), cv2.IMREAD_GRAYSCALE)
        labelled = any(v > 0 for p in rec["people"] for v in p["kpts_vis"])
        if img is None or heat is None or not labelled or heat.shape != img.shape[:2]:
            continue
        tile = cv2.addWeighted(img, 0.55, cv2.applyColorMap(heat, cv2.COLORMAP_JET), 0.45, 0)
        for p in rec["people"]:
            for a, b in LIMBS:
                if p["kpts_vis"][a] > 0 and p["kpts_vis"][b] > 0:
                    cv2.line(tile, tuple(int(v) for v in p["kpts"][a]), tuple(int(v) for v in p["kpts"][b]),
                             (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.hstack([img, tile]))
        if len(tiles) == n:
            break
    if not tiles:
        return None
    w = max(t.shape[1] for t in tiles)
    grid = np.vstack([cv2.copyMakeBorder(t, 2, 2, 0, w - t.shape[1], cv2.BORDER_CONSTANT) for t in tiles])
    path = lay.report / "heatmap_overlays.png"
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp.with_suffix(".png")), grid)
        tmp.with_suffix(".png").replace(tmp)
    return path


def loss_curves(lay: Layout) -> Path | None:
    """Left: the image–text loss of both runs (the one term they share, so the curves compare),
    train per step and validation per epoch. Middle: FocusCLIP's three pair losses. Right: its alpha."""
    runs = {label: lay.train / model / "metrics.jsonl" for model, label in MODELS}
    runs = {k: read_jsonl(v) for k, v in runs.items() if v.is_file()}
    if not runs:
        return None
    plt = _plt()
    fig, (ax, ax_pairs, ax_alpha) = plt.subplots(1, 3, figsize=(15, 4))
    for label, rows in runs.items():
        _plot(ax, rows, "loss_image_text", f"{label} train")
        _plot(ax, rows, "val_loss_image_text", f"{label} val", "o--")
        if label == "FocusCLIP":
            for key in ("loss_image_text", "loss_masked_image", "loss_masked_text"):
                _plot(ax_pairs, rows, key, key.removeprefix("loss_").replace("_", "–"))
            _plot(ax_alpha, rows, "alpha", "alpha")
    ax.set(xlabel="step", ylabel="NT-Xent loss", title="image–text loss (both models)")
    ax_pairs.set(xlabel="step", ylabel="NT-Xent loss", title="FocusCLIP pair losses")
    ax_alpha.set(xlabel="step", ylabel="alpha", title="FocusCLIP alpha (image weight outside the heatmap)")
    for a in (ax, ax_pairs, ax_alpha):
        if a.lines:
            a.legend()
    return _save(fig, lay.report / "loss_curves.png")


def _plot(ax, rows: list[dict], key: str, label: str, style: str = "-") -> None:
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if points:
        ax.plot(*zip(*points), style, label=label, alpha=0.85)


def _results(lay: Layout) -> dict[str, dict]:
    """{model label: {task id: entry}} over synthetic and real results files that exist."""
    out: dict[str, dict] = {}
    for model, label in MODELS:
        tasks: dict[str, dict] = {}
        for real in (False, True):
            path = results_path(lay, model, real)
            if path.is_file():
                for tid, entry in json.loads(path.read_text()).get("tasks", {}).items():
                    if "topk" in entry:
                        tasks[tid + (" (real)" if real else "")] = entry
        if tasks:
            out[label] = tasks
    return out


def reference_levels(entry: dict) -> dict:
    """The image-blind levels (chance, best constant answer) of a results entry's test set, as focus-eval
    wrote them (`levels`); empty for results written before it did."""
    return entry.get("levels") or {}


def _level(levels: dict, key: str) -> str:
    return f"{100 * levels[key]:.1f}" if key in levels else "—"


def _cell(entry: dict | None, key: str, ci_key: str) -> str:
    if not entry or key not in entry:
        return "—"
    ci = entry.get(ci_key) or []
    band = f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if len(ci) == 2 else ""
    return f"{100 * entry[key]:.1f}{band}"


def results_table(lay: Layout) -> str | None:
    """Markdown: per task, top-1 and top-k of CLIP and FocusCLIP with their bootstrap 95% CIs, the
    difference, and the levels of a model that ignores the image (chance, best constant answer)."""
    res = _results(lay)
    if not res:
        return None
    tasks = sorted({t for r in res.values() for t in r})
    labels = [label for _, label in MODELS]
    lines = ["| task | n | metric | chance | image-blind | " + " | ".join(labels) + " | FocusCLIP − CLIP |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tasks:
        e = {m: res.get(m, {}).get(t) for m in labels}
        any_e = next(v for v in e.values() if v)
        ref = reference_levels(any_e)
        for key, ci_key, name in (("top1", "ci95_top1", "top-1"), ("topk", "ci95", f"top-{any_e.get('k', '?')}")):
            delta = (f"{100 * (e['FocusCLIP'][key] - e['CLIP'][key]):+.1f}"
                     if e["FocusCLIP"] and e["CLIP"] and key in e["FocusCLIP"] and key in e["CLIP"] else "—")
            lines.append(f"| {t} | {any_e.get('n', '?')} | {name} | {_level(ref, 'chance_' + key)} | "
                         f"{_level(ref, 'blind_' + key)} | "
                         + " | ".join(_cell(e[m], key, ci_key) for m in labels) + f" | {delta} |")
    return ("Zero-shot accuracy (%) on the synthetic held-out sets, [bootstrap 95% CI]; chance = uniform "
            "guesses, image-blind = the best constant answer (the most frequent test classes)\n\n"
            + "\n".join(lines))


def results_chart(lay: Layout) -> Path | None:
    """Grouped bars of top-1 and top-k per task for both models, with their bootstrap 95% intervals,
    and the image-blind level (the best constant answer) as a dashed line."""
    res = _results(lay)
    if not res:
        return None
    plt = _plt()
    tasks = sorted({t for r in res.values() for t in r})
    fig, axes = plt.subplots(1, 2, figsize=(2 * max(5, 1.6 * len(tasks) + 2), 4))
    width = 0.8 / len(res)
    for ax, key, ci_key, name in ((axes[0], "top1", "ci95_top1", "top-1"), (axes[1], "topk", "ci95", "top-k")):
        for i, (label, entries) in enumerate(res.items()):
            x = np.arange(len(tasks)) + i * width
            y = [100 * entries[t][key] if key in entries.get(t, {}) else math.nan for t in tasks]
            err = [_err(entries.get(t), v, ci_key) for t, v in zip(tasks, y)]
            ax.bar(x, y, width, label=label, yerr=np.array(err).T, capsize=3)
        for j, t in enumerate(tasks):
            entry = next(r[t] for r in res.values() if t in r)
            blind = 100 * reference_levels(entry).get(f"blind_{key}", math.nan)
            ax.hlines(blind, j - width / 2, j + 0.8 - width / 2, colors="k", linestyles="--",
                      label="image-blind" if j == 0 else None)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=15)
        ax.set(ylabel=f"zero-shot {name} accuracy (%)", title=f"CLIP vs FocusCLIP, {name} (95% CI)")
        ax.legend()
    return _save(fig, lay.report / "results.png")


def _err(entry: dict | None, value: float, ci_key: str = "ci95") -> tuple[float, float]:
    ci = (entry or {}).get(ci_key)
    if not ci or len(ci) != 2 or math.isnan(value):
        return (0.0, 0.0)
    return (max(0.0, value - 100 * ci[0]), max(0.0, 100 * ci[1] - value))
