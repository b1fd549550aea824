"""The paper's claim in miniature: does the heatmap branch help zero-shot accuracy?

On the synthetic world, trains the tiny CLIP and the tiny FocusCLIP with the same budget (same data,
epochs, batch size, optimizer and steps) for several seeds each and reports mean ± std zero-shot
accuracy on the held-out synthetic tasks, as a markdown table on stdout and JSON.

    .venv/bin/python benchmarks/focus_effect.py                  # 3 seeds, runs/focus_effect/
    .venv/bin/python benchmarks/focus_effect.py --clutter 0      # the same without distractors
    .venv/bin/python benchmarks/focus_effect.py --set loss.weights.masked_image=0 …

Everything goes through the console scripts, like `focus-data demo` (whose data steps it reuses);
finished runs are kept, so an interrupted benchmark continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from focusclip.pipeline.demo import DemoOptions, run_demo
from focusclip.pipeline.demo.layout import Layout
from focusclip.pipeline.demo.plans import SYNTH_TASKS, plan_eval, plan_train
from focusclip.pipeline.demo.stage import SubprocessRunner, run_step

REPO = Path(__file__).resolve().parents[1]

MODELS = ("clip", "focusclip")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "focus_effect")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-eval", type=int, default=280)
    p.add_argument("--epochs", type=int, default=12, help="both models (the tiny configs' own is 4)")
    p.add_argument("--clutter", type=float, default=1.0)
    p.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for both models")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--tag", default="", help="suffix of the run names, to keep a variant's runs apart")
    p.add_argument("--json", type=Path, default=None, help="default: OUT/focus_effect[-TAG].json")
    return p.parse_args(argv)


def build_data(opt: DemoOptions) -> None:
    """synth → convert → heatmaps → describe → filter → publish, through the demo's own steps."""
    # only the data options: training variants of one benchmark folder share its dataset
    data_opt = DemoOptions(out=opt.out, n_train=opt.n_train, n_eval=opt.n_eval, seed=opt.seed,
                           clutter=opt.clutter, until="publish")
    report = run_demo(data_opt, echo=lambda s: print(s, file=sys.stderr))
    bad = [s for s in report.extra["steps"] if s["status"] not in ("ran", "reused")]
    if bad:
        sys.exit(f"data steps did not finish: {bad}")


def train_and_eval(opt: DemoOptions, lay: Layout, model: str, seed: int, tag: str = "") -> dict:
    """One run: `train/<model>-e<epochs>[-tag]-s<seed>` and its results JSON; returns {task: top-k}."""
    # the name carries what differs between runs, so a finished run is only ever reused for the same budget
    run = f"{model}-e{opt.epochs or 'cfg'}{'-' + tag if tag else ''}-s{seed}"
    runner = SubprocessRunner()
    planners = (lambda: plan_train(model, opt, lay, run=run, seed=seed), lambda: plan_eval(run, opt, lay))
    for plan in planners:   # planned one at a time: evaluation needs the finished training
        step = plan()
        if isinstance(step, str):
            sys.exit(f"{run}: {step}")
        outcome = run_step(run, step, runner, lay, lambda s: print(s, file=sys.stderr))
        print(f"{run}: {step.script} {outcome.status} {outcome.detail}", file=sys.stderr)
        if outcome.status not in ("ran", "reused"):
            sys.exit(f"{run} failed: {outcome.detail}")
    results = json.loads((lay.out / f"results-{run}.json").read_text())["tasks"]
    metrics = json.loads((lay.train / run / "metrics.jsonl").read_text().splitlines()[-1] or "{}")
    alpha = _last_alpha(lay.train / run / "metrics.jsonl")
    return {"run": run, "topk": {t: results[t]["topk"] for t in SYNTH_TASKS},
            "n": {t: results[t]["n"] for t in SYNTH_TASKS}, "alpha": alpha, "last_row": metrics}


def heatmap_coverage(lay: Layout, n: int = 300) -> dict:
    """How well the ROI heatmaps (docs/design.md §3.3) cover the drawn people: mean heatmap value on body
    pixels and off them, and the share of body pixels above 0.5. Body pixels are approximated from the
    keypoints: limbs as strokes of the generator's width (about 9% of the person's height), plus the head."""
    import cv2
    import numpy as np

    from focusclip.data.io import read_jsonl
    from focusclip.data.skeleton import LIMBS

    on, off, above = [], [], []
    for rec in read_jsonl(lay.world_truth)[:n]:
        heat = cv2.imread(str(lay.heatmaps / (Path(rec["image"]).stem + ".png")), cv2.IMREAD_GRAYSCALE)
        if heat is None or not any(v > 0 for p in rec["people"] for v in p["kpts_vis"]):
            continue
        body = np.zeros(heat.shape, np.uint8)
        for p in rec["people"]:
            width = max(2, int(0.09 * 200 * (p["scale"] or 0)))
            for a, b in LIMBS:
                if p["kpts_vis"][a] > 0 and p["kpts_vis"][b] > 0:
                    cv2.line(body, tuple(map(int, p["kpts"][a])), tuple(map(int, p["kpts"][b])), 1, width)
        h = heat.astype(np.float32) / 255
        on.append(h[body > 0].mean())
        off.append(h[body == 0].mean())
        above.append((h[body > 0] > 0.5).mean())
    mean = lambda xs: round(float(np.mean(xs)), 3) if xs else None  # noqa: E731
    return {"images": len(on), "mean_on_body": mean(on), "mean_off_body": mean(off),
            "body_share_above_0.5": mean(above)}


def _budget(lay: Layout, runs: dict) -> str:
    """The training budget both models had: optimizer steps per run (from the runs' reports)."""
    steps = {json.loads((lay.train / r["run"] / "report.json").read_text())["counts"].get("steps")
             for by_seed in runs.values() for r in by_seed.values()}
    return f"optimizer steps per run: {', '.join(str(s) for s in sorted(steps, key=str))}"


def _last_alpha(path: Path) -> float | None:
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    alphas = [r["alpha"] for r in rows if r.get("alpha") is not None]
    return alphas[-1] if alphas else None


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(runs: dict[str, dict[int, dict]]) -> dict:
    """mean ± std over seeds per model and task, and of the mean over tasks."""
    out = {}
    for model, by_seed in runs.items():
        tasks = {t: _mean_std([r["topk"][t] for r in by_seed.values()]) for t in SYNTH_TASKS}
        overall = _mean_std([statistics.fmean(r["topk"].values()) for r in by_seed.values()])
        out[model] = {"tasks": tasks, "mean": overall, "seeds": sorted(by_seed)}
    return out


def markdown(summary: dict, runs: dict, args: argparse.Namespace, lay: Layout) -> str:
    models = [m for m in MODELS if m in summary]
    names = {"clip": "CLIP", "focusclip": "FocusCLIP"}
    both = len(models) == 2
    head = ("| task | " + " | ".join(names[m] for m in models) + (" | Δ (FocusCLIP − CLIP) |" if both else " |")
            + "\n|---|" + "---|" * (len(models) + both))
    rows = []
    for t in (*SYNTH_TASKS, "mean"):
        vals = [summary[m]["tasks"][t] if t != "mean" else summary[m]["mean"] for m in models]
        cells = " | ".join(f"{100 * v[0]:.1f} ± {100 * v[1]:.1f}" for v in vals)
        delta = f" | {100 * (vals[1][0] - vals[0][0]):+.1f}" if both else ""
        rows.append(f"| {t} | {cells}{delta} |")
    alphas = [r["alpha"] for r in runs.get("focusclip", {}).values() if r["alpha"] is not None]
    n = next(iter(runs[models[0]].values()))["n"]
    note = (f"\nZero-shot top-k accuracy (%) on the held-out synthetic sets ({', '.join(f'{t}: n={v}' for t, v in n.items())}); "
            f"mean ± std over seeds {args.seeds}; n_train={args.n_train}, clutter={args.clutter}, "
            f"extra sets={args.sets or 'none'}; {_budget(lay, runs)}. FocusCLIP's final alpha: "
            f"{', '.join(f'{a:.3f}' for a in alphas) or 'n/a'}.")
    return head + "\n" + "\n".join(rows) + "\n" + note


def main(argv=None) -> None:
    args = parse_args(argv)
    opt = DemoOptions(out=args.out, n_train=args.n_train, n_eval=args.n_eval, seed=0, clutter=args.clutter,
                      epochs=args.epochs, train_sets=tuple(args.sets))
    build_data(opt)
    lay = Layout(args.out)
    runs = {m: {s: train_and_eval(opt, lay, m, s, args.tag) for s in args.seeds} for m in args.models}
    summary = summarise(runs)
    table = markdown(summary, runs, args, lay)
    coverage = heatmap_coverage(lay)
    print(table)
    print(f"\nHeatmap coverage of the drawn bodies: {coverage}")
    path = args.json or args.out / f"focus_effect{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps({"options": {k: str(v) for k, v in vars(args).items()},
                                "summary": summary, "runs": runs, "table": table,
                                "heatmap_coverage": coverage}, indent=2) + "\n")
    print(f"\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
