"""The demo's report folder: heatmap overlays, loss curves, the results chart and the CLIP-vs-FocusCLIP
table, built from the files the stages wrote (whatever of them exist). Each picture carries a caption
and the table a note saying what its numbers mean (the miniature's known result, and where it is
explained), as a first-time reader sees them without the docs.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from focusclip.core.io import atomic_path, atomic_write_text, read_jsonl
from focusclip.data.skeleton import LIMBS
from focusclip.pipeline.demo.drawn import DRAWN_TASK
from focusclip.pipeline.demo.layout import Layout, results_path

MODELS = (("clip", "CLIP"), ("focusclip", "FocusCLIP"))
# What the miniature's numbers mean, beside them (README "Does the heatmap help?", docs/focus-effect.md).
READING = """\
How to read this: a CPU miniature (2-layer towers trained from scratch on a synthetic world with one
person per image, one seed), not the paper's models. Its known result, over 5 seeds with paired CIs, is
that FocusCLIP scores below CLIP over all 40 classes and ties it among the 7 activities the world draws:
the 40-way gap sits in answers naming the 33 classes that no image shows and no description names, not
in how the models look at the person. So the top-1 among the drawn classes is the number that counts
what the images show. Chance is k random guesses of the classes; image-blind is the best constant answer
(the most frequent test classes), what a model that only learnt which activity words its training text
holds can reach: a top-k at or below it has learnt no more than that. One run's CIs are wide; a
difference inside them is noise. Explained in README.md ("Does the heatmap help?") and
docs/focus-effect.md; the table's columns in docs/demo.md."""


def build_report(lay: Layout, echo: Callable[[str], None] = print) -> list[Path]:
    """Write what the finished stages allow into `lay.report`; print the table and where to look."""
    lay.report.mkdir(parents=True, exist_ok=True)
    made = [p for p in (heatmap_overlays(lay), loss_curves(lay), results_chart(lay)) if p]
    table = results_table(lay)
    if table:
        table += "\n\n" + READING
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


OVERLAY_CAPTION = ("Left: a training image. Right: its ROI heatmap (docs/design.md 3.3) blended over it, "
                   "red = 1 (the body parts), blue = 0, with the annotated skeletons in white. FocusCLIP's "
                   "third view is image * (alpha + heatmap * (1 - alpha)).")


def heatmap_overlays(lay: Layout, n: int = 6) -> Path | None:
    """Images with their ROI heatmap in colour and the skeletons, for the first `n` images with people;
    a caption above, and each row labelled with its image and activity."""
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
        row = np.hstack([img, tile])
        label = f"{rec['image']}: {rec.get('activity') or 'no activity'} ({len(rec['people'])} annotated)"
        tiles.append(np.vstack([_text_band(row.shape[1], [label], scale=0.4), row]))
        if len(tiles) == n:
            break
    if not tiles:
        return None
    w = max(t.shape[1] for t in tiles)
    grid = np.vstack([_text_band(w, _wrap(OVERLAY_CAPTION, w), scale=0.45)]
                     + [cv2.copyMakeBorder(t, 2, 2, 0, w - t.shape[1], cv2.BORDER_CONSTANT) for t in tiles])
    path = lay.report / "heatmap_overlays.png"
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp.with_suffix(".png")), grid)
        tmp.with_suffix(".png").replace(tmp)
    return path


def _wrap(text: str, width_px: int, scale: float = 0.45) -> list[str]:
    """`text` in lines that fit `width_px` at OpenCV's simplex font of `scale`."""
    import cv2

    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width_px - 12:
            lines.append(line)
            trial = word
        line = trial
    return lines + [line] if line else lines


def _text_band(width: int, lines: list[str], scale: float) -> np.ndarray:
    """A white band of `width` px holding `lines` in black (BGR, uint8)."""
    import cv2

    step = int(30 * scale) + 6
    band = np.full((step * len(lines) + 6, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(band, line, (6, step * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band


SKIP_FRACTION = 0.05   # the loss curves' y-range leaves out the first 5% of the steps (the first losses)


def loss_curves(lay: Layout) -> Path | None:
    """Left: the image–text loss of both runs (the one term they share, so the curves compare),
    train per step and validation per epoch. Middle: FocusCLIP's three pair losses. Right: its alpha.
    The loss axes are cut to a readable range (`readable_ylim`), which the caption states."""
    runs = {label: lay.train / model / "metrics.jsonl" for model, label in MODELS}
    runs = {k: read_jsonl(v) for k, v in runs.items() if v.is_file()}
    if not runs:
        return None
    plt = _plt()
    fig, (ax, ax_pairs, ax_alpha) = plt.subplots(1, 3, figsize=(15, 4.6))
    shown: dict[object, list[tuple[int, float]]] = {ax: [], ax_pairs: []}
    validation: list[tuple[int, float]] = []
    for label, rows in runs.items():
        shown[ax] += _plot(ax, rows, "loss_image_text", f"{label} train")
        validation += _plot(ax, rows, "val_loss_image_text", f"{label} validation", "o--")
        if label == "FocusCLIP":
            for key in ("loss_image_text", "loss_masked_image", "loss_masked_text"):
                shown[ax_pairs] += _plot(ax_pairs, rows, key, key.removeprefix("loss_").replace("_", "–"))
            _plot(ax_alpha, rows, "alpha", "alpha")
    ax.set(xlabel="step", ylabel="NT-Xent loss", title="image–text loss (both models)")
    ax_pairs.set(xlabel="step", ylabel="NT-Xent loss", title="FocusCLIP pair losses")
    ax_alpha.set(xlabel="step", ylabel="alpha", title="FocusCLIP alpha (image weight outside the heatmap)")
    caption = "Train losses per logged step, validation (o--) at each validation."
    keep = list(validation)                       # inside the cut range: the validation, the collapse level
    batch = _batch_size(lay)
    if batch:   # NT-Xent scores each of the 2B embeddings against the 2B − 1 others
        collapse = math.log(2 * batch - 1)
        ax.axhline(collapse, color="grey", lw=0.8, ls=":", label=f"collapse (ln {2 * batch - 1})")
        keep.append((math.inf, collapse))
        caption += (f" Dotted grey: the loss of a model that cannot tell its pairs apart (ln {2 * batch - 1} = "
                    f"{collapse:.2f} for a batch of {batch}); learning is the validation going below it.")
    cut = [c for c in (readable_ylim(ax, shown[ax] + validation, keep),
                       readable_ylim(ax_pairs, shown[ax_pairs])) if c is not None]
    for a in (ax, ax_pairs, ax_alpha):
        if a.lines:
            a.legend()
    if cut:
        caption += (f" Loss axes cut at the 99th percentile of the values after the first {SKIP_FRACTION:.0%} "
                    f"of the steps: the first steps' loss (up to {max(cut):.1f}) is off the top.")
    fig.text(0.01, -0.02, caption, ha="left", va="top", wrap=True, fontsize=9)
    return _save(fig, lay.report / "loss_curves.png")


def _batch_size(lay: Layout) -> int | None:
    """train.batch_size of the runs (the resolved config.yaml each writes), when they agree."""
    import yaml

    sizes = set()
    for model, _ in MODELS:
        path = lay.train / model / "config.yaml"
        if path.is_file():
            sizes.add((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("train", {}).get("batch_size"))
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def readable_ylim(ax, points: list[tuple[int, float]], keep: list[tuple[int, float]] = ()) -> float | None:
    """Cut the y-axis to the 99th percentile of the values after the first SKIP_FRACTION of the steps
    (and the `keep` points after them, the validation, always inside): the first steps' loss (about 17
    at a 0.07 temperature) would squash every later curve into a flat line. Returns the highest value
    left off, None when none is."""
    if not points:
        return None
    last = max(s for s, _ in points)
    later = [v for s, v in points if s > SKIP_FRACTION * last] or [v for _, v in points]
    hi = max([float(np.percentile(later, 99))] + [v for s, v in keep if s > SKIP_FRACTION * last])
    lo, peak = min([v for _, v in points] + [v for _, v in keep]), max(v for _, v in points)
    if peak <= hi:
        return None
    pad = 0.05 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    return peak


def _plot(ax, rows: list[dict], key: str, label: str, style: str = "-") -> list[tuple[int, float]]:
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if points:
        ax.plot(*zip(*points), style, label=label, alpha=0.85)
    return points


def _results(lay: Layout) -> dict[str, dict]:
    """{model label: {task id: entry}} over synthetic and real results files that exist. focus-eval's
    entry of the drawn-classes task (pipeline/demo/drawn.py) joins the Stanford 40 entry it restricts,
    as its `top1_drawn`, `ci95_top1_drawn`, `drawn` (how many) and `levels_drawn`."""
    out: dict[str, dict] = {}
    for model, label in MODELS:
        tasks: dict[str, dict] = {}
        for real in (False, True):
            path = results_path(lay, model, real)
            if path.is_file():
                for tid, entry in json.loads(path.read_text()).get("tasks", {}).items():
                    if "topk" in entry:
                        tasks[tid + (" (real)" if real else "")] = entry
        drawn = tasks.pop(DRAWN_TASK, None)
        if drawn and "stanford40-action" in tasks:
            levels = drawn.get("levels") or {}
            tasks["stanford40-action"] = {
                **tasks["stanford40-action"], "top1_drawn": drawn["top1"], "ci95_top1_drawn": drawn.get("ci95_top1"),
                "drawn": len(drawn.get("classes") or []),
                "levels_drawn": {f"{k}_drawn": levels[k] for k in ("chance_top1", "blind_top1") if k in levels}}
        if tasks:
            out[label] = tasks
    return out


def reference_levels(entry: dict) -> dict:
    """The image-blind levels (chance, best constant answer) of a results entry's test set, as focus-eval
    wrote them (`levels`), and those among the drawn classes; empty for results written before it did."""
    return {**(entry.get("levels") or {}), **(entry.get("levels_drawn") or {})}


def metrics(entry: dict) -> list[tuple[str, str, str]]:
    """(value key, CI key, name) of each metric an entry has, named as the table and chart name them:
    top-1 and top-k over all the task's classes, then top-1 among the drawn ones."""
    n = len(entry.get("classes") or []) or "?"
    out = [("top1", "ci95_top1", f"top-1 of {n}"), ("topk", "ci95", f"top-{entry.get('k', '?')} of {n}")]
    if "top1_drawn" in entry:
        out.append(("top1_drawn", "ci95_top1_drawn", f"top-1 of the {entry['drawn']} drawn"))
    return out


def _level(levels: dict, key: str) -> str:
    return f"{100 * levels[key]:.1f}" if key in levels else "—"


def _cell(entry: dict | None, key: str, ci_key: str) -> str:
    if not entry or key not in entry:
        return "—"
    ci = entry.get(ci_key) or []
    band = f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if len(ci) == 2 else ""
    return f"{100 * entry[key]:.1f}{band}"


def results_table(lay: Layout) -> str | None:
    """Markdown: per task, top-1 and top-k of CLIP and FocusCLIP with their bootstrap 95% CIs (and the
    top-1 among the drawn classes on the synthetic set), the difference, and the levels of a model
    that ignores the image (chance, best constant answer)."""
    res = _results(lay)
    if not res:
        return None
    tasks = sorted({t for r in res.values() for t in r})
    labels = [label for _, label in MODELS]
    lines = ["| task | n | metric | chance | image-blind | " + " | ".join(labels) + " | FocusCLIP − CLIP |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tasks:
        e = {m: res.get(m, {}).get(t) for m in labels}
        any_e = max((v for v in e.values() if v), key=lambda v: "top1_drawn" in v)
        ref = reference_levels(any_e)
        for key, ci_key, name in metrics(any_e):
            delta = (f"{100 * (e['FocusCLIP'][key] - e['CLIP'][key]):+.1f}"
                     if e["FocusCLIP"] and e["CLIP"] and key in e["FocusCLIP"] and key in e["CLIP"] else "—")
            lines.append(f"| {t} | {any_e.get('n', '?')} | {name} | {_level(ref, 'chance_' + key)} | "
                         f"{_level(ref, 'blind_' + key)} | "
                         + " | ".join(_cell(e[m], key, ci_key) for m in labels) + f" | {delta} |")
    head = ("Zero-shot accuracy (%) on the synthetic held-out sets, [bootstrap 95% CI]; \"of 40\": over all "
            "the task's classes, \"of the 7 drawn\": among the classes the synthetic images show; chance = "
            "uniform guesses, image-blind = the best constant answer (the most frequent test classes)")
    return head + "\n\n" + "\n".join(lines)


def results_chart(lay: Layout) -> Path | None:
    """Grouped bars of each metric (top-1 and top-k over all classes, top-1 among the drawn ones) per
    task for both models, with their bootstrap 95% intervals, the chance level (dotted) and the
    image-blind level (the best constant answer, dashed), named as the table names them."""
    res = _results(lay)
    if not res:
        return None
    plt = _plt()
    tasks = sorted({t for r in res.values() for t in r})
    first = {t: max((r[t] for r in res.values() if t in r), key=lambda v: "top1_drawn" in v) for t in tasks}
    names: dict[tuple[str, str], list[str]] = {}     # a panel per metric; tasks of other class counts share it
    for t in tasks:
        for key, ci_key, name in metrics(first[t]):
            names.setdefault((key, ci_key), []).append(name)
    panels = [(key, ci_key, " / ".join(dict.fromkeys(n))) for (key, ci_key), n in names.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * max(5, 1.6 * len(tasks) + 2), 4.4),
                             squeeze=False)
    width = 0.8 / len(res)
    for ax, (key, ci_key, name) in zip(axes[0], panels):
        for i, (label, entries) in enumerate(res.items()):
            x = np.arange(len(tasks)) + i * width
            y = [100 * entries[t][key] if key in entries.get(t, {}) else math.nan for t in tasks]
            err = [_err(entries.get(t), v, ci_key) for t, v in zip(tasks, y)]
            ax.bar(x, y, width, label=label, yerr=np.array(err).T, capsize=3)
        for j, t in enumerate(tasks):
            levels = reference_levels(first[t])
            for level, style, what in (("chance", ":", "chance"), ("blind", "--", "image-blind")):
                value = 100 * levels.get(f"{level}_{key}", math.nan)
                ax.hlines(value, j - width / 2, j + 0.8 - width / 2, colors="k", linestyles=style,
                          label=what if j == 0 else None)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=15)
        ax.set(ylabel=f"zero-shot {name} accuracy (%)", title=f"CLIP vs FocusCLIP, {name} (95% CI)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncol=4, fontsize=9,
               bbox_to_anchor=(0.5, 0.0), frameon=False)
    same = [name for key, _, name in panels
            if all(reference_levels(first[t]).get(f"chance_{key}") == reference_levels(first[t]).get(f"blind_{key}")
                   is not None for t in tasks)]
    fig.text(0.01, -0.09, "Bars: one run of each model, with bootstrap 95% CIs. Dotted: chance; dashed: "
             "image-blind (the best constant answer)"
             + (f"; they coincide for {', '.join(same)} (its classes have equally many test images)" if same else "")
             + ". The miniature's known result: FocusCLIP below CLIP over all 40 classes, a tie among the 7 drawn "
             "(README \"Does the heatmap help?\", docs/focus-effect.md).", ha="left", va="top", wrap=True, fontsize=9)
    return _save(fig, lay.report / "results.png")


def _err(entry: dict | None, value: float, ci_key: str = "ci95") -> tuple[float, float]:
    ci = (entry or {}).get(ci_key)
    if not ci or len(ci) != 2 or math.isnan(value):
        return (0.0, 0.0)
    return (max(0.0, value - 100 * ci[0]), max(0.0, 100 * ci[1] - value))
