"""The paper's claim in miniature: does the heatmap branch help zero-shot accuracy, and if so, why?

On the synthetic world (built by `focus-data demo`'s own data steps), trains configs/mini-clip.yaml and
configs/mini-focusclip.yaml with the same budget (data, batch, optimizer, steps) for several seeds, plus
FocusCLIP controls that say where a gain would come from:

  clip          the baseline (image–text only)
  focusclip     the paper's three losses, alpha learnt from 0.5
  uniform       the third view with a uniform heatmap (each heatmap replaced by its own mean): an
                extra, dimmed view of the image with no focus on the person
  alpha0        alpha frozen at 0: the weighted image is the heatmap region only
  alpha05       alpha frozen at 0.5
  no-masked-image   masked–image loss weight 0 (image–text and masked–text only)

The world: `--bystanders K` puts K unannotated people doing other activities beside each image's
subjects, in the training and the test images alike (`focus-data synth --bystanders`); the heatmaps and
the descriptions cover only the subjects, so that is where the paper's claim (the heatmap tells the
model which person the text is about) can show. `--tau` picks the temperature of every run: `shared`
(the configs' one learnt τ), `per-pair` (one learnt τ per loss pair) or `fixed` (the paper's 0.5).

`--init-from EARLIER_OUT` is the paper's regime: each seed's run continues that folder's `clip` model of
the seed with the fine-tuning recipes (configs/mini-<config>-ft.yaml, model.init), arm `base` is that
model untouched, and every model is also scored on the earlier world's test images. With bystanders in
the test images the table says who the answers are about: the subject's activity, the bystander's
(`stanford40_bystanders` draws each test scene again to know it), and how often the subject's class
scores above the bystander's.

Each run is scored zero-shot on every held-out image of the synthetic Stanford 40 set (`--n-eval`
test images: ≥ 1,000), in-process with focus-eval's own reader, prompts and scorer, keeping the
per-image hits. The headline is top-1 among the classes the world draws (what its images can show),
with the 40-way figure beside it. Reported per arm: mean ± std over seeds of top-1 and top-3; per control a paired
bootstrap 95% CI of (arm − clip) in top-1, resampling seeds and test images together (the same seeds
and images for both arms), so both sources of spread are in the interval; alpha and τ (each pair's,
with `--tau per-pair`) at the end of each run, and how much of the seed-to-seed spread of top-1 the share of answers on absent classes explains
(r²). Where the answers come from: an image's score x·t_c is the images' common part μ·t_c (μ the mean
test image; a per-class bias) plus its own part (x − μ)·t_c; the table's footers give top-1 and the
absent share with the common part removed, and split each difference to CLIP (and each control's to
FocusCLIP) into what either part contributes, by moving that part between the two models (`split_by_part`).
Writes OUT/focus_effect.json, OUT/focus_effect.md and OUT/focus_effect.png (top-1 per arm with the CI,
the image–text validation loss and alpha curves, each run's top-1 against its absent share, the absent
share with and without the common part, and the split by part with its CIs); each run's scores are kept
as train/<run>/scores-stanford40-action.npy.

    .venv/bin/python benchmarks/focus_effect.py                         # 5 seeds × 6 arms, runs/focus_effect/
    .venv/bin/python benchmarks/focus_effect.py --arms clip focusclip --seeds 0 1 2
    .venv/bin/python benchmarks/focus_effect.py --steps 3000 --jobs 2   # a larger budget, 2 runs at a time
    .venv/bin/python benchmarks/focus_effect.py --bystanders 1 --tau per-pair   # runs/focus_effect-b1/
    .venv/bin/python benchmarks/focus_effect.py --bystanders 1 --tau per-pair --init-from runs/focus_effect-b0 \
        --arms base clip focusclip --steps 400 --out runs/focus_effect-b1-cont

Finished runs are kept (their folder names carry the budget), so an interrupted benchmark continues.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple
from pathlib import Path

import numpy as np

from focusclip.eval.metrics import image_blind_levels
from focusclip.pipeline.demo import DemoOptions, run_demo
from focusclip.pipeline.demo.layout import Layout
from focusclip.pipeline.demo.plans import plan_train
from focusclip.pipeline.demo.stage import SubprocessRunner, run_step

REPO = Path(__file__).resolve().parents[1]
TASK = "stanford40-action"
ARMS: dict[str, tuple[str, tuple[str, ...]]] = {   # arm → (config, extra --set)
    "clip": ("clip", ()),
    "focusclip": ("focusclip", ()),
    "uniform": ("focusclip", ("data.uniform_heatmap=true",)),
    "alpha0": ("focusclip", ("model.alpha_trainable=false", "model.alpha_init=0.0")),
    "alpha05": ("focusclip", ("model.alpha_trainable=false", "model.alpha_init=0.5")),
    "no-masked-image": ("focusclip", ("loss.weights.masked_image=0.0",)),
}
# --tau → the --set of every run, and the tag its run folders carry
TAUS: dict[str, tuple[tuple[str, ...], str]] = {
    "shared": ((), ""),                                                    # the configs' one learnt τ
    "per-pair": (("loss.temperature_per_pair=true",), "-tpp"),             # one learnt τ per loss pair
    "fixed": (("loss.learn_temperature=false", "loss.temperature=0.5"), "-t05"),   # the paper's
}
# bump when training changes what a finished run folder holds, so no older run is reused
# (2: the masked view leaves the stem's batch-norm statistics alone)
RUNS_VERSION = 2
PAIR_TAUS = (("image_text", "temperature"), ("masked_image", "temperature_masked_image"),
             ("masked_text", "temperature_masked_text"))   # loss pair → its metrics.jsonl column
RESAMPLES = 10_000
SPLIT_REFS = ("clip", "focusclip")   # arms − these are split by part of the score (`split_by_part`)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/focus_effect, or runs/focus_effect-bK with --bystanders K)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--arms", nargs="+", choices=list(ARMS) + ["base"], default=list(ARMS))
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-eval", type=int, default=1000, help="Stanford 40 test images (≥ 1,000 for ±3 points)")
    p.add_argument("--steps", type=int, default=800, help="optimizer steps of every run (the same budget)")
    p.add_argument("--clutter", type=float, default=1.0)
    p.add_argument("--bystanders", type=int, default=0,
                   help="unannotated people beside each image's subjects, doing other activities (training and test)")
    p.add_argument("--tau", choices=list(TAUS), default="shared",
                   help="temperature: the configs' one learnt τ, one learnt per loss pair, or the paper's fixed 0.5")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one CPU thread each")
    p.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for every run")
    p.add_argument("--init-from", type=Path, default=None,
                   help="an earlier benchmark's folder: each seed's run continues its `clip` arm's model of that "
                        "seed (configs mini-<arm>-ft.yaml, model.init), and arm `base` is that model itself; "
                        "every run is also scored on that folder's test images")
    args = p.parse_args(argv)
    if "base" in args.arms and args.init_from is None:
        p.error("arm base is the --init-from model: pass --init-from")
    if args.out is None:
        args.out = REPO / "runs" / ("focus_effect" + (f"-b{args.bystanders}" if args.bystanders else ""))
    return args


def build_data(args) -> Layout:
    """synth → convert → heatmaps → describe → filter → publish, through the demo's own steps; the
    world is drawn here first, with its bystanders (the demo's synth step then finds it done), and a
    world in `--out` drawn with other options is an error, not reused."""
    from focusclip.pipeline.synth import run_synth

    lay = Layout(args.out)
    run_synth(lay.world, n_train=args.n_train, n_eval=args.n_eval, seed=0, clutter=args.clutter,
              bystanders=args.bystanders, progress=False)
    opt = DemoOptions(out=args.out, n_train=args.n_train, n_eval=args.n_eval, seed=0, clutter=args.clutter,
                      until="publish")
    report = run_demo(opt, echo=lambda s: print(s, file=sys.stderr))
    bad = [s for s in report.extra["steps"] if s["status"] not in ("ran", "reused")]
    if bad:
        sys.exit(f"data steps did not finish: {bad}")
    return Layout(args.out)


def run_name(arm: str, seed: int, args) -> str:
    extra = f"-x{hashlib.sha256(json.dumps(args.sets).encode()).hexdigest()[:8]}" if args.sets else ""
    init = f"-i{hashlib.sha256(str(init_checkpoint(args, seed)).encode()).hexdigest()[:8]}" if args.init_from else ""
    if arm == "base":
        return f"base{init}-s{seed}"
    return f"{arm}-st{args.steps}-v{RUNS_VERSION}{TAUS[args.tau][1]}{extra}{init}-s{seed}"


def init_checkpoint(args, seed: int) -> Path:
    """--init-from's `clip` model of `seed` (its checkpoints/last), as its focus_effect.json names it."""
    summary = args.init_from / "focus_effect.json"
    if not summary.is_file():
        sys.exit(f"--init-from {args.init_from}: no focus_effect.json (run the benchmark there first)")
    run = json.loads(summary.read_text()).get("runs", {}).get(f"clip/{seed}")
    ckpt = args.init_from / "train" / str(run) / "checkpoints" / "last"
    if run is None or not ckpt.is_dir():
        sys.exit(f"--init-from {args.init_from}: no clip run of seed {seed} (run its clip arm with that seed)")
    return ckpt.resolve()


def train(arm: str, seed: int, args, lay: Layout) -> tuple[str, str]:
    """One training run (reused when finished); returns its folder name under train/ and whether it
    "ran" now or was "reused"."""
    run = run_name(arm, seed, args)
    if arm == "base":                       # the --init-from model as it is: scored, not trained
        (lay.train / run).mkdir(parents=True, exist_ok=True)
        return run, "reused"
    config, sets = ARMS[arm]
    if args.init_from:                      # the fine-tuning recipes, continuing that seed's CLIP
        config, sets = f"{config}-ft", sets + (f"model.init={init_checkpoint(args, seed)}",)
    opt = DemoOptions(out=args.out, steps=args.steps, seed=seed,
                      train_sets=tuple(sets) + TAUS[args.tau][0] + tuple(args.sets))
    step = plan_train(config, opt, lay, run=run, seed=seed)
    if isinstance(step, str):
        sys.exit(f"{run}: {step}")
    t0 = time.time()
    outcome = run_step(run, step, SubprocessRunner(), lay, lambda s: None)
    print(f"{run}: {outcome.status} {outcome.detail} ({time.time() - t0:.0f} s)", file=sys.stderr)
    if outcome.status not in ("ran", "reused"):
        sys.exit(f"{run} failed: {outcome.detail} (log: {lay.logs})")
    return run, outcome.status


class TestSet(NamedTuple):
    """A synthetic Stanford 40 test set: `tag` "" for the benchmark's own, "-base-world" for --init-from's;
    `bystanders`: what stanford40_bystanders lists for each image (empty lists without bystanders)."""
    tag: str
    eval_root: Path
    bystanders: dict


def test_set(out: Path, tag: str) -> TestSet:
    """The test set of the world in `out`, with what its report says it was drawn with."""
    from focusclip.data.synthetic.evalsets import stanford40_bystanders
    from focusclip.data.synthetic.world import WorldConfig

    lay = Layout(out)
    options = json.loads(lay.world_report.read_text())["options"]
    world = {"bystanders": 0, **options["world"]}       # a world written before bystanders existed had none
    return TestSet(tag, lay.eval_root, stanford40_bystanders(options["n_eval"], options["seed"], WorldConfig(**world)))


def checkpoint_of(run: str, lay: Layout, args) -> Path:
    """train/<run>'s last checkpoint; for arm base, the --init-from model it scores."""
    if run.startswith("base-"):
        return init_checkpoint(args, int(run.rsplit("-s", 1)[1]))
    return lay.train / run / "checkpoints" / "last"


def score(run: str, lay: Layout, ckpt: Path, test: TestSet) -> dict:
    """Per-image top-1 / top-k hits of the model `ckpt` (train/<run>'s) on a synthetic Stanford 40 test
    set, scored as focus-eval scores (its reader, prompt ensemble off, classifier and scorer); cached
    beside the run. With bystanders in the test images, also per image whether the top-1 among the drawn
    classes names the bystander's activity, and whether the subject's class scores above it (images
    whose bystander does a drawn activity; None for the others)."""
    cache = lay.train / run / f"hits-{TASK}{test.tag}.json"
    if cache.is_file() and scores_path(run, lay, test).is_file():
        cached = json.loads(cache.read_text())
        if "bystander_top1_drawn" in cached:     # else written by an older version of this script
            return cached
    import torch

    from focusclip.eval.metrics import hits_at, top_predictions
    from focusclip.eval.model import load_model
    from focusclip.eval.zeroshot import build_classifier, score_samples

    task, samples, labels = task_data(test.eval_root)
    model = load_model(ckpt, None, torch.device("cpu"))
    with torch.no_grad():
        classifier = build_classifier(model, task.prompts(False))
        scores, _ = score_samples(model, samples, classifier, batch_size=64, workers=0, device=torch.device("cpu"))
    preds = top_predictions(scores, task.k)
    # the same scores over only the classes the world draws (those with test images): separates
    # "looks at the image" from prompts of words no training text holds, which the 40-way top-1 mixes
    drawn = sorted({lab for labs in labels for lab in labs})
    sub = top_predictions(scores[:, drawn], 1)[:, 0]
    first = [lab[0] for lab in labels]
    centred = top_predictions(scores - scores.mean(0), 1)[:, 0]
    other = bystander_classes(samples, test, list(task.class_names))
    out = {"images": [s.key for s in samples],
           "top1_drawn": [int(drawn[j] in labs) for j, labs in zip(sub, labels)], "drawn": len(drawn),
           "bystander_top1_drawn": [None if c is None else int(drawn[j] == c) for j, c in zip(sub, other)],
           "subject_over_bystander": [None if c is None else int(scores[i, y] > scores[i, c])
                                      for i, (y, c) in enumerate(zip(first, other))],
           "absent_top1": int(sum(p not in drawn for p in preds[:, 0])),
           "label_counts": np.bincount(first, minlength=len(task.class_names)).tolist(),
           "top1": hits_at(preds, labels, 1).astype(int).tolist(), "topk": hits_at(preds, labels, task.k).astype(int).tolist(),
           "top1_centred": hits_at(centred[:, None], labels, 1).astype(int).tolist(),
           "k": task.k, "classes": len(task.class_names),
           "geometry": geometry(scores, first, drawn, classifier.T.numpy())}
    np.save(scores_path(run, lay, test), scores.astype(np.float32))
    cache.write_text(json.dumps(out))
    return out


def bystander_classes(samples, test: TestSet, classes: list[str]) -> list[int | None]:
    """Per test image, the class index of its first bystander's activity when a drawn class shows it
    (None: no bystander, or one doing what no class draws, e.g. standing)."""
    out = []
    for s in samples:
        listed = test.bystanders.get(Path(s.key).name, [])
        action = listed[0]["action"] if listed else None
        out.append(classes.index(action) if action in classes else None)
    return out


def task_data(eval_root: Path) -> tuple:
    """(task, samples, labels) of the synthetic Stanford 40 test set, through focus-eval's reader."""
    from focusclip.eval.run import read_task_data, task_samples
    from focusclip.eval.tasks import select_tasks

    task = select_tasks([TASK])[0]
    samples, labels, _ = task_samples(task, read_task_data(task, eval_root), None)
    return task, samples, labels


def scores_path(run: str, lay: Layout, test: TestSet) -> Path:
    """train/<run>/scores-<task><tag>.npy: the run's cosine scores [images, classes], for `split_by_part`."""
    return lay.train / run / f"scores-{TASK}{test.tag}.npy"


def split_by_part(a: np.ndarray, b: np.ndarray, labels: list[list[int]]) -> dict[str, np.ndarray]:
    """Per-image top-1 hit difference of model a over model b, split between the two parts of a score
    (see `geometry`): each image's own part (scores minus their column means) and the common part (the
    column means: a per-class bias every image shares). Both models score the same classes, so either
    part can be moved from one to the other: with h(own, common) the top-1 hit of `own + common`,
    own = ½[h(a, b) − h(b, b) + h(a, a) − h(b, a)], common = ½[h(b, a) − h(b, b) + h(a, a) − h(a, b)]
    (the Shapley split of two swaps), so own + common = h(a, a) − h(b, b), image by image.
    `a`, `b`: scores [N, C] of the two models on the same images."""
    parts = {m: (x - x.mean(0), x.mean(0)) for m, x in (("a", a), ("b", b))}

    def h(own: str, common: str) -> np.ndarray:
        pred = (parts[own][0] + parts[common][1]).argmax(1)
        return np.array([int(p in labs) for p, labs in zip(pred, labels)], dtype=np.float64)

    aa, bb, ab, ba = h("a", "a"), h("b", "b"), h("a", "b"), h("b", "a")
    return {"own": (ab - bb + aa - ba) / 2, "common": (ba - bb + aa - ab) / 2}


def geometry(scores: np.ndarray, labels: list[int], drawn: list[int], prompts: np.ndarray) -> dict:
    """Where images sit among the prompts: the mean cosine of an image to its own class's prompt, how
    far the nearest absent-class prompt is above it (> 0: an absent class wins), and how spread the
    absent classes' prompts are (1 − their mean pairwise cosine). `prompts`: unit rows [C, D].

    An image's score for class c, x·t_c, splits into the images' common part μ·t_c (μ: the mean test
    image embedding; the same for every image, so a per-class bias) and the image's own (x − μ)·t_c.
    `centroid_absent_lead` is how much higher the common part is for the absent classes than for the
    drawn ones (mean over each), `absent_above_drawn` how many absent classes' common part is above
    every drawn class's, `absent_share_centred` the share of top-1 answers on absent classes without
    the common part (column means of `scores` subtracted; `score`'s absent_top1 counts them as scored).
    A diagnostic: μ is the test set's own mean."""
    y = np.asarray(labels)
    absent = [c for c in range(scores.shape[1]) if c not in set(drawn)]
    true = scores[np.arange(len(y)), y]
    off = (prompts[absent] @ prompts[absent].T)[~np.eye(len(absent), dtype=bool)]
    bias = scores.mean(0)                                      # μ·t_c
    nan = float("nan")     # no absent class, or one: nothing to measure
    return {"cos_true": float(true.mean()),
            "absent_over_true": float((scores[:, absent].max(1) - true).mean()) if absent else nan,
            "absent_prompt_spread": float(1 - off.mean()) if off.size else nan,
            "centroid_absent_lead": float(bias[absent].mean() - bias[drawn].mean()) if absent else nan,
            "absent_above_drawn": int((bias[absent] > bias[drawn].max()).sum()) if absent else 0,
            "absent_share_centred": float(np.isin((scores - bias).argmax(1), absent).mean())}


def curves(run: str, lay: Layout) -> dict:
    """The run's validation image–text loss and alpha by step, and its final τ of each pair it logged."""
    metrics = lay.train / run / "metrics.jsonl"
    rows = [json.loads(ln) for ln in metrics.read_text().splitlines() if ln.strip()] if metrics.is_file() else []
    val = [(r["step"], r["val_loss_image_text"]) for r in rows if r.get("val_loss_image_text") is not None]
    alpha = [(r["step"], r["alpha"]) for r in rows if r.get("alpha") is not None]
    last = next((r for r in reversed(rows) if "temperature" in r), {})
    return {"val_image_text": val, "alpha": alpha,
            "temperature": {pair: last[key] for pair, key in PAIR_TAUS if last.get(key) is not None}}


def seed_image_bootstrap(values: np.ndarray, seed: int = 0) -> list[float]:
    """95% percentile interval of the mean of `values` [seeds, images]: each resample draws seeds and
    images with replacement."""
    rng = np.random.default_rng(seed)
    s, n = values.shape
    d = values.astype(np.float64)
    means = []
    for _ in range(RESAMPLES):
        si, ii = rng.integers(0, s, s), rng.integers(0, n, n)
        means.append(d[np.ix_(si, ii)].mean())
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def paired_bootstrap(a: np.ndarray, b: np.ndarray, seed: int = 0) -> list[float]:
    """95% interval of mean(a − b) for hits [seeds, images] of two arms on the same seeds and images:
    the same seeds and images are drawn for both arms."""
    return seed_image_bootstrap(a.astype(np.float64) - b, seed)


def _r2(x: list[float], y: list[float]) -> float | None:
    """Share of the seed-to-seed variance of `y` that a straight line in `x` explains (None: too few seeds
    or no spread)."""
    if len(x) < 3 or statistics.pstdev(x) == 0 or statistics.pstdev(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def summarise(hits: dict[str, dict[int, dict]], seeds: list[int]) -> dict:
    out = {}
    for arm, by_seed in hits.items():
        t1 = [statistics.fmean(by_seed[s]["top1"]) for s in seeds]
        tk = [statistics.fmean(by_seed[s]["topk"]) for s in seeds]
        td = [statistics.fmean(by_seed[s]["top1_drawn"]) for s in seeds]
        absent = [by_seed[s]["absent_top1"] / len(by_seed[s]["top1"]) for s in seeds]
        out[arm] = {"top1": t1, "topk": tk, "top1_drawn": td, "top1_drawn_mean": statistics.fmean(td),
                    "top1_drawn_std": statistics.stdev(td) if len(td) > 1 else 0.0,
                    "absent_top1_share": statistics.fmean(absent), "absent_top1_per_seed": absent,
                    "top1_r2_absent": _r2(absent, t1),
                    "top1_mean": statistics.fmean(t1), "topk_mean": statistics.fmean(tk),
                    "top1_std": statistics.stdev(t1) if len(t1) > 1 else 0.0,
                    "topk_std": statistics.stdev(tk) if len(tk) > 1 else 0.0}
        if any(h is not None for s in seeds for h in by_seed[s].get("bystander_top1_drawn", [])):
            out[arm]["bystander"] = bystander_shares(by_seed, seeds)
        if all("geometry" in by_seed[s] for s in seeds):
            out[arm]["geometry"] = {k: statistics.fmean(by_seed[s]["geometry"][k] for s in seeds)
                                    for k in by_seed[seeds[0]]["geometry"]}
        centred = all("top1_centred" in by_seed[s] for s in seeds)
        if centred:
            tc = [statistics.fmean(by_seed[s]["top1_centred"]) for s in seeds]
            out[arm].update(top1_centred=tc, top1_centred_mean=statistics.fmean(tc))
        if arm != "clip" and "clip" in hits:
            keys = ("top1", "top1_drawn") + (("top1_centred",) if centred and "top1_centred" in hits["clip"][seeds[0]] else ())
            for key in keys:
                a = np.array([hits[arm][s][key] for s in seeds])
                b = np.array([hits["clip"][s][key] for s in seeds])
                out[arm][f"delta_{key}"] = float((a - b).mean())
                out[arm][f"delta_{key}_ci95"] = paired_bootstrap(a, b)
        for ref in SPLIT_REFS:
            if all(ref in by_seed[s].get("split", {}) for s in seeds):
                out[arm].setdefault("split", {})[ref] = {}
                for part in ("own", "common"):
                    d = np.array([by_seed[s]["split"][ref][part] for s in seeds])
                    out[arm]["split"][ref].update({part: float(d.mean()), f"{part}_ci95": seed_image_bootstrap(d)})
    return out


def bystander_shares(by_seed: dict[int, dict], seeds: list[int]) -> dict:
    """Over every seed's test images, split by whether the image's bystander does a drawn activity: how
    often the top-1 among the drawn classes names the subject's activity and how often the bystander's,
    and how often the subject's class scores above the bystander's (a coin flip when the model cannot
    tell which person the label is about)."""
    rows = [(t, h, o) for s in seeds for t, h, o in zip(by_seed[s]["top1_drawn"], by_seed[s]["bystander_top1_drawn"],
                                                        by_seed[s]["subject_over_bystander"])]
    drawn = [(t, h, o) for t, h, o in rows if h is not None]
    undrawn = [t for t, h, _ in rows if h is None]
    return {"images_drawn_bystander": len(drawn) // len(seeds), "images_other": len(undrawn) // len(seeds),
            "subject_top1": statistics.fmean(t for t, _, _ in drawn), "bystander_top1": statistics.fmean(h for _, h, _ in drawn),
            "subject_over_bystander": statistics.fmean(o for _, _, o in drawn),
            "subject_top1_other": statistics.fmean(undrawn) if undrawn else None}


def _ci(s: dict, key: str, half: bool = True) -> str:
    """A difference in points with its 95% CI (and the CI's half-width); "—" where there is none."""
    if key not in s:
        return "—"
    lo, hi = s[key + "_ci95"]
    return f"{100 * s[key]:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" + (f" (±{50 * (hi - lo):.1f})" if half else "")


def markdown(summary: dict, meta: dict) -> str:
    lines = [f"| arm | **top-1 of the {meta['drawn']} drawn** | its − CLIP [paired 95% CI] | top-1 of 40 | "
             "top-1 − CLIP [paired 95% CI] | top-3 of 40 | predictions on absent classes | final alpha | "
             "final τ: image–text / masked–image / masked–text |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm, s in summary.items():
        alphas = meta["alpha"].get(arm) or []
        alpha = f"{statistics.fmean(alphas):.2f} ({min(alphas):.2f}–{max(alphas):.2f})" if alphas else "—"
        lines.append(f"| {arm} | {100 * s['top1_drawn_mean']:.1f} ± {100 * s['top1_drawn_std']:.1f} | "
                     f"{_ci(s, 'delta_top1_drawn')} | {100 * s['top1_mean']:.1f} ± {100 * s['top1_std']:.1f} | "
                     f"{_ci(s, 'delta_top1')} | {100 * s['topk_mean']:.1f} ± {100 * s['topk_std']:.1f} | "
                     f"{100 * s['absent_top1_share']:.0f}% | {alpha} | {final_taus(meta.get('temperature', {}).get(arm))} |")
    return ("\n".join(lines) + f"\n\nZero-shot accuracy (%, mean ± std over seeds) on the synthetic Stanford 40 test set "
            f"(n = {meta['n']} images; {meta['classes']} candidate classes, {meta['drawn']} of them drawn; chance "
            f"{100 / meta['classes']:.1f} top-1 of 40, {100 / meta['drawn']:.1f} of the drawn; image-blind best constant "
            f"answer {100 * meta['blind_top1']:.1f} top-1 / {100 * meta['blind_topk']:.1f} top-3), seeds {meta['seeds']}, "
            f"{meta['steps']} optimizer steps per run at batch 32, n_train {meta['n_train']}, clutter {meta['clutter']}, "
            f"{meta.get('bystanders', 0)} bystanders per image, temperature {meta.get('tau', 'shared')}, "
            f"extra sets {meta['sets'] or 'none'}; {meta['minutes']:.0f} min ({meta['runs_trained']} runs trained now, "
            f"{meta['runs_reused']} reused from earlier invocations)." + _spread_note(summary) + _geometry_note(summary)
            + _centred_note(summary) + _split_note(summary) + _bystander_note(summary) + _init_note(meta))


def _bystander_note(summary: dict) -> str:
    rows = []
    for arm, s in summary.items():
        if not (b := s.get("bystander")):
            continue
        other = f"{100 * b['subject_top1_other']:.1f}" if b["subject_top1_other"] is not None else "—"
        rows.append(f"{arm} {100 * b['subject_top1']:.1f} / {100 * b['bystander_top1']:.1f} / "
                    f"{100 * b['subject_over_bystander']:.1f} / {other}")
    if not rows:
        return ""
    b = next(s["bystander"] for s in summary.values() if s.get("bystander"))
    return ("\n\nWho the answers are about (top-1 among the drawn classes, mean over seeds): on the "
            f"{b['images_drawn_bystander']} test images whose bystander does a drawn activity, the share naming the "
            "subject's activity / the share naming the bystander's / the share where the subject's class scores "
            "above the bystander's (50: the model cannot tell which person the label is about); then top-1 on the "
            f"{b['images_other']} images whose bystander does an activity no class draws (standing, sitting, …): "
            f"{'; '.join(rows)}.")


def _init_note(meta: dict) -> str:
    if not meta.get("init_from"):
        return ""
    return (f"\n\nEvery run continues, with configs/mini-<arm>-ft.yaml, the `clip` model of its seed from "
            f"{meta['init_from']} (arm base: that model, not trained here).")


def base_world_table(summary: dict, meta: dict) -> str:
    """The same models on the test images of the --init-from world (no bystanders there)."""
    lines = [f"On the test images of {meta['init_from']}'s world (the world the base CLIP learnt; no bystanders):",
             "", f"| arm | top-1 of the {meta['drawn']} drawn | its − CLIP [paired 95% CI] | top-1 of 40 | top-1 − CLIP |",
             "|---|---|---|---|---|"]
    for arm, s in summary.items():
        lines.append(f"| {arm} | {100 * s['top1_drawn_mean']:.1f} ± {100 * s['top1_drawn_std']:.1f} | "
                     f"{_ci(s, 'delta_top1_drawn', False)} | {100 * s['top1_mean']:.1f} ± {100 * s['top1_std']:.1f} | "
                     f"{_ci(s, 'delta_top1', False)} |")
    return "\n".join(lines)


def final_taus(per_seed: list[dict[str, float]] | None) -> str:
    """Mean over seeds of each pair's final τ, "image–text / masked–image / masked–text" ("—" for a
    pair without its own τ); one value when the run learnt (or fixed) one τ for every pair."""
    if not per_seed:
        return "—"
    pairs = [pair for pair, _ in PAIR_TAUS if all(pair in t for t in per_seed)]
    means = {pair: statistics.fmean(t[pair] for t in per_seed) for pair in pairs}
    if list(means) == ["image_text"]:
        return f"{means['image_text']:.3f}"
    return " / ".join(f"{means[pair]:.3f}" if pair in means else "—" for pair, _ in PAIR_TAUS)


def _geometry_note(summary: dict) -> str:
    rows = [f"{arm} {g['cos_true']:.2f} / {g['absent_over_true']:+.3f} / {g['absent_prompt_spread']:.3f}"
            for arm, s in summary.items() if (g := s.get("geometry"))]
    return ("\n\nWhere the images sit among the prompts (mean over seeds): cosine of an image to its own class's "
            "prompt / the nearest absent-class prompt's cosine minus that / spread of the absent classes' prompts "
            f"(1 − their mean pairwise cosine): {'; '.join(rows)}." if rows else "")


def _centred_note(summary: dict) -> str:
    rows = []
    for arm, s in summary.items():
        g = s.get("geometry") or {}
        if "top1_centred_mean" not in s or "absent_share_centred" not in g:
            continue
        delta = ""
        if "delta_top1_centred" in s:
            lo, hi = s["delta_top1_centred_ci95"]
            delta = f", {100 * s['delta_top1_centred']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] vs CLIP"
        rows.append(f"{arm} {100 * s['top1_centred_mean']:.1f}{delta}, absent {100 * s['absent_top1_share']:.0f}% → "
                    f"{100 * g['absent_share_centred']:.0f}%, lead {g['centroid_absent_lead']:+.3f}, "
                    f"{g['absent_above_drawn']:.1f} absent above every drawn")
    return ("\n\nWith the images' common part removed (each class's mean score over the test images subtracted, "
            "which leaves each image's own part (x − μ)·t_c; a diagnostic, μ is the test set's mean): top-1 of 40, "
            "its paired difference to CLIP, the share of answers on absent classes before → after, how much "
            "higher μ·t_c is for the absent classes than the drawn ones, and how many of the absent classes have "
            f"it above every drawn class's: {'; '.join(rows)}." if rows else "")


def _split_note(summary: dict) -> str:
    def pct(x: dict, key: str) -> str:
        lo, hi = x[key + "_ci95"]
        return f"{100 * x[key]:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"

    rows = [f"{arm} − {ref} {pct(parts, 'own')} + {pct(parts, 'common')}" for ref in SPLIT_REFS
            for arm, s in summary.items() if (parts := s.get("split", {}).get(ref))]
    return ("\n\nTop-1 differences split into what each image's own part and what the common part (the per-class "
            "bias μ·t_c) contribute, each part moved between the two models seed by seed (the Shapley split of the "
            f"two swaps; 95% CI over seeds and images), own + common: {'; '.join(rows)}." if rows else "")


def _spread_note(summary: dict) -> str:
    r2 = [f"{arm} {s['top1_r2_absent']:.2f}" for arm, s in summary.items() if s.get("top1_r2_absent") is not None]
    return ("\n\nShare of the seed-to-seed variance of top-1 of 40 explained by the share of answers on absent "
            f"classes (r²): {', '.join(r2)}." if r2 else "")


def plot(summary: dict, curve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((ax, ax_val, ax_alpha), (ax_abs, ax_cen, ax_split)) = plt.subplots(2, 3, figsize=(21, 9))
    arms = list(summary)
    x = np.arange(len(arms))
    for dx, key, label, colour in ((-0.2, "top1_drawn", "among the drawn classes (headline)", "tab:blue"),
                                   (0.2, "top1", "of 40", "tab:gray")):
        ax.bar(x + dx, [100 * summary[a][f"{key}_mean"] for a in arms], width=0.4, label=label, color=colour,
               yerr=[100 * summary[a][f"{key}_std"] for a in arms], capsize=3)
        for i, a in enumerate(arms):
            if f"delta_{key}_ci95" in summary[a]:
                base = 100 * summary["clip"][f"{key}_mean"]
                lo, hi = (base + 100 * v for v in summary[a][f"delta_{key}_ci95"])
                ax.plot([i + dx, i + dx], [lo, hi], color="k", lw=3, alpha=0.4)
    ax.set_xticks(x, arms, rotation=20)
    ax.set(ylabel="top-1 (%)", title="top-1 per arm (bars: ± std over seeds; grey: CLIP + paired 95% CI of Δ)")
    ax.legend(fontsize=8)
    for arm, by_seed in curve.items():
        for k, (seed, c) in enumerate(sorted(by_seed.items())):
            if c["val_image_text"]:
                ax_val.plot(*zip(*c["val_image_text"]), color=f"C{arms.index(arm)}", alpha=0.6,
                            label=arm if k == 0 else None)
            if c["alpha"]:
                ax_alpha.plot(*zip(*c["alpha"]), color=f"C{arms.index(arm)}", alpha=0.6, label=arm if k == 0 else None)
    for i, a in enumerate(arms):
        ax_abs.scatter([100 * v for v in summary[a]["absent_top1_per_seed"]], [100 * v for v in summary[a]["top1"]],
                       color=f"C{i}", s=14, label=a)
    ax_abs.set(xlabel="top-1 answers on absent classes (%)", ylabel="top-1 of 40 (%)", title="each seed's run")
    geo = [a for a in arms if "absent_share_centred" in (summary[a].get("geometry") or {})]
    x = np.arange(len(geo))
    for dx, share, label in ((-0.2, lambda a: summary[a]["absent_top1_share"], "as scored"),
                             (0.2, lambda a: summary[a]["geometry"]["absent_share_centred"], "images' common part removed")):
        ax_cen.bar(x + dx, [100 * share(a) for a in geo], width=0.4, label=label)
    ax_cen.set_xticks(x, geo, rotation=20)
    ax_cen.set(ylabel="top-1 answers on absent classes (%)", title="absent answers: common part vs each image's own")
    if geo:
        ax_cen.legend(fontsize=8)
    pairs = [(a, ref) for ref in SPLIT_REFS for a in arms if ref in summary[a].get("split", {})]
    x = np.arange(len(pairs))
    for dx, part, label in ((-0.2, "own", "each image's own part"), (0.2, "common", "common part (per-class bias)")):
        mid = [100 * summary[a]["split"][ref][part] for a, ref in pairs]
        lo = [m - 100 * summary[a]["split"][ref][f"{part}_ci95"][0] for m, (a, ref) in zip(mid, pairs)]
        hi = [100 * summary[a]["split"][ref][f"{part}_ci95"][1] - m for m, (a, ref) in zip(mid, pairs)]
        ax_split.bar(x + dx, mid, width=0.4, yerr=[lo, hi], capsize=3, label=label)
    ax_split.axhline(0, color="k", lw=0.8)
    ax_split.set_xticks(x, [f"{a} − {ref}" for a, ref in pairs], rotation=30, ha="right")
    ax_split.set(ylabel="top-1 difference (points)", title="top-1 differences by part of the score (95% CI)")
    if pairs:
        ax_split.legend(fontsize=8)
    ax_val.set(xlabel="step", ylabel="validation image–text loss", title="image–text loss (every seed)")
    ax_alpha.set(xlabel="step", ylabel="alpha", title="alpha (learnt arms)")
    for a in (ax_val, ax_alpha, ax_abs):
        if a.lines or a.collections:
            a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    t0 = time.time()
    lay = build_data(args)
    os.environ.setdefault("OMP_NUM_THREADS", "1" if args.jobs > 1 else str(os.cpu_count() or 1))
    jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = dict(zip(jobs, pool.map(lambda j: train(j[0], j[1], args, lay), jobs)))
    runs = {job: run for job, (run, _) in done.items()}
    trained = sum(status == "ran" for _, status in done.values())
    own = test_set(args.out, "")
    hits = {arm: {s: score(runs[(arm, s)], lay, checkpoint_of(runs[(arm, s)], lay, args), own) for s in args.seeds}
            for arm in args.arms}
    base_world = None
    if args.init_from:      # the same models on the test images of the world they were first trained in
        other = test_set(args.init_from, "-base-world")
        base_world = {arm: {s: score(runs[(arm, s)], lay, checkpoint_of(runs[(arm, s)], lay, args), other)
                            for s in args.seeds} for arm in args.arms}
    labels = task_data(own.eval_root)[2]
    for arm in hits:
        for ref in (r for r in SPLIT_REFS if r in hits and r != arm and (arm, r) != ("clip", "focusclip")):
            for s in args.seeds:
                split = split_by_part(np.load(scores_path(runs[(arm, s)], lay, own)),
                                      np.load(scores_path(runs[(ref, s)], lay, own)), labels)
                hits[arm][s] = {**hits[arm][s], "split": {**hits[arm][s].get("split", {}),
                                                          ref: {k: v.tolist() for k, v in split.items()}}}
    curve = {arm: {s: curves(runs[(arm, s)], lay) for s in args.seeds} for arm in args.arms}
    summary = summarise(hits, args.seeds)
    first = next(iter(next(iter(hits.values())).values()))
    blind = image_blind_levels(first["label_counts"], first["k"])
    meta = {"n": len(first["top1"]), "classes": first["classes"], "drawn": first["drawn"], "seeds": args.seeds, "steps": args.steps,
            "n_train": args.n_train, "clutter": args.clutter, "sets": args.sets,
            "blind_top1": blind["blind_top1"], "blind_topk": blind["blind_topk"],
            "alpha": {arm: [c["alpha"][-1][1] for c in curve[arm].values() if c["alpha"]] for arm in args.arms},
            "temperature": {arm: [c["temperature"] for c in curve[arm].values() if c["temperature"]] for arm in args.arms},
            "bystanders": args.bystanders, "tau": args.tau,
            "init_from": str(args.init_from) if args.init_from else None,
            "minutes": (time.time() - t0) / 60, "runs_trained": trained, "runs_reused": len(done) - trained}
    table = markdown(summary, meta)
    if base_world is not None:
        summary_base_world = summarise(base_world, args.seeds)
        table += "\n\n" + base_world_table(summary_base_world, meta)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "focus_effect.md").write_text(table + "\n")
    plot(summary, curve, args.out / "focus_effect.png")
    (args.out / "focus_effect.json").write_text(json.dumps(
        {"options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
         "meta": meta, "summary": summary,
         "summary_base_world": summary_base_world if base_world is not None else None, "runs": {f"{a}/{s}": r for (a, s), r in runs.items()},
         "curves": curve, "table": table}, indent=1) + "\n")
    print(f"\nwrote {args.out}/focus_effect.{{json,md,png}}", file=sys.stderr)


if __name__ == "__main__":
    main()
