"""Where the miniature's zero-shot accuracy goes: the world's own ceiling, what CLIP's image tower
holds, and what its prompts read out, on the same synthetic Stanford 40 test images.

On the demo's synthetic world (built with the demo's own data steps, as benchmarks/focus_effect.py
does) and `configs/mini-clip.yaml` trained with the demo's budget, five classifiers of the drawn
Stanford 40 activities (7 of the 40 classes have images), each scored by top-1 among the drawn classes:

  supervised    the same ViT as mini-clip's vision tower (random init, same size, optimizer, schedule,
                steps and batch), trained with cross-entropy on the training images' MPII activity
                labels: how far these pixels can tell the activities apart at all (the world's ceiling)
  probe         a linear classifier (logistic regression) on the trained CLIP's frozen image
                embeddings, fit to the same labels: what contrastive training put into the image side
  centroids     zero-shot against the mean text embedding of each activity's training descriptions:
                the image–text alignment read out in the words training used
  prompts       focus-eval's zero-shot with the task's prompt ("a photo of a person {}.")
  ensemble      the same with the task's template ensemble (focus-eval --ensemble)

and, for prompts and ensemble, top-1 over all 40 candidates with the share of answers that name a
class no test image shows. Every number comes with a bootstrap 95% CI over test images and seeds.
Writes OUT/world_probe.{json,md,png}.

    .venv/bin/python benchmarks/world_probe.py                   # seed 0, 1,000 test images, runs/world_probe
    .venv/bin/python benchmarks/world_probe.py --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from focus_effect import REPO, TASK, build_data, seed_image_bootstrap, train  # noqa: E402  (the same data steps, runs, CI)

METHODS = ("supervised", "probe", "centroids", "prompts", "ensemble")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "world_probe")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps of CLIP and of the supervised ViT")
    p.add_argument("--clutter", type=float, default=1.0)
    p.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for the CLIP runs")
    p.add_argument("--jobs", type=int, default=1)
    return p.parse_args(argv)


def activity_labels(lay) -> dict[str, str]:
    """image name → MPII activity name, from the converted annotations."""
    from focusclip.core.io import read_jsonl

    return {r["image"]: r["activity"] for r in read_jsonl(lay.annotations) if r.get("activity")}


def load_pixels(paths: list[Path], size: int, mean, std, resize: str):
    import torch
    from PIL import Image

    from focusclip.training.transforms import pil_to_pixels

    out = torch.empty(len(paths), 3, size, size)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            out[i] = pil_to_pixels(im.convert("RGB"), size, mean, std, resize)
    return out


def supervised(cfg, x, y, n_classes: int, steps: int, seed: int):
    """The mini vision tower + a linear head, trained with cross-entropy as the CLIP runs train
    (AdamW, warmup + cosine, grad clip, batch, steps); returns the model in eval mode."""
    import torch

    from focusclip.training.factory import _random_vit
    from focusclip.training.model import VisionTower
    from focusclip.training.optim import build_optimizer, build_scheduler, seed_all

    seed_all(seed)
    net = torch.nn.Sequential(VisionTower(_random_vit(cfg), cfg.model.embed_dim, cfg.train.image_size),
                              torch.nn.Linear(cfg.model.embed_dim, n_classes))
    opt = build_optimizer(net, cfg.optim)
    sched = build_scheduler(opt, steps, cfg.optim)
    g = torch.Generator().manual_seed(seed)
    bs = cfg.train.batch_size
    net.train()
    perm, at = torch.randperm(len(x), generator=g), 0
    for _ in range(steps):
        if at + bs > len(perm):
            perm, at = torch.randperm(len(x), generator=g), 0
        idx = perm[at:at + bs]
        at += bs
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
        opt.step()
        sched.step()
    return net.eval()


def logits(net, x, batch: int = 256):
    import torch

    with torch.no_grad():
        return torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])


def linear_probe(train_f, y, n_classes: int, seed: int, l2: float = 1e-3):
    """Multinomial logistic regression on frozen features (L-BFGS, full batch, small L2)."""
    import torch

    torch.manual_seed(seed)
    w = torch.zeros(train_f.shape[1] + 1, n_classes, requires_grad=True)
    xb = torch.cat([train_f, torch.ones(len(train_f), 1)], 1)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xb @ w, y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda f: torch.cat([f, torch.ones(len(f), 1)], 1) @ w.detach()


def measure(seed: int, args, lay) -> dict:
    """Every method's per-image top-1 hits among the drawn classes for one seed (cached beside the run)."""
    import torch

    from focusclip.core.report import Report
    from focusclip.data.synthetic.pose import ACTIVITIES
    from focusclip.eval.metrics import top_predictions
    from focusclip.eval.model import load_model
    from focusclip.eval.run import read_task_data, task_samples
    from focusclip.eval.tasks import select_tasks
    from focusclip.eval.zeroshot import build_classifier
    from focusclip.training.config import load_config
    from focusclip.training.sources import load_items

    run = train("clip", seed, args, lay)
    cache = lay.train / run / "world_probe.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    torch.set_num_threads(2)
    t0 = time.time()
    cfg = load_config(REPO / "configs" / "mini-clip.yaml")
    task = select_tasks([TASK])[0]
    samples, labels, _ = task_samples(task, read_task_data(task, lay.eval_root), None)
    classes = task.class_names
    drawn = sorted({lab for labs in labels for lab in labs})                 # indices into the 40
    truth = np.array([drawn.index(labs[0]) for labs in labels])              # index into drawn
    # The MPII activities of the training world and the Stanford 40 class each stands for.
    by_name = {a.name: a for a in ACTIVITIES}
    acts = [a.name for a in ACTIVITIES]
    act_of_drawn = [next(a.name for a in ACTIVITIES if a.stanford40 == classes[d]) for d in drawn]
    cols = [acts.index(a) for a in act_of_drawn]                               # drawn → activity column

    names = activity_labels(lay)
    items = [it for it in load_items(str(lay.published), (), None, Report("probe")) if it.split == "train"
             and it.image in names and names[it.image] in by_name]
    y = torch.tensor([acts.index(names[it.image]) for it in items])
    v = cfg.model.vision
    x_train = load_pixels([lay.images / it.image for it in items], cfg.train.image_size, v.image_mean,
                          v.image_std, cfg.data.resize)
    x_test = load_pixels([Path(s.image.path) for s in samples], cfg.train.image_size, v.image_mean,
                         v.image_std, cfg.data.resize)
    hits: dict[str, list[int]] = {}

    net = supervised(cfg, x_train, y, len(acts), args.steps, seed)
    pred = logits(net, x_test)[:, cols].argmax(1).numpy()
    hits["supervised"] = (pred == truth).astype(int).tolist()

    model = load_model(lay.train / run / "checkpoints" / "last", None, torch.device("cpu"))
    with torch.no_grad():   # the pixels above are the checkpoint's own preprocessing (squash, its mean/std)
        f_train, f_test = (torch.cat([model.encode_images(x[i:i + 256]) for i in range(0, len(x), 256)])
                           for x in (x_train, x_test))
    head = linear_probe(f_train, y, len(acts), seed)
    hits["probe"] = (head(f_test)[:, cols].argmax(1).numpy() == truth).astype(int).tolist()

    with torch.no_grad():
        cent = []
        for a in act_of_drawn:
            texts = [d for it, lab in zip(items, y.tolist()) if acts[lab] == a for d in it.descriptions]
            e = torch.cat([model.encode_texts(texts[i:i + 256]) for i in range(0, len(texts), 256)])
            cent.append(torch.nn.functional.normalize(e.mean(0), dim=0))
        cent = torch.stack(cent, 1)                                           # [D, drawn]
    hits["centroids"] = ((f_test @ cent).argmax(1).numpy() == truth).astype(int).tolist()

    absent = {}
    for method, ensemble in (("prompts", False), ("ensemble", True)):
        with torch.no_grad():
            clf = build_classifier(model, task.prompts(ensemble))
        scores = (f_test @ clf).numpy()
        hits[method] = (scores[:, drawn].argmax(1) == truth).astype(int).tolist()
        top = top_predictions(scores, 1)[:, 0]
        hits[method + "_of_40"] = [int(t == drawn[k]) for t, k in zip(top, truth)]
        absent[method] = float(np.mean([t not in drawn for t in top]))
    out = {"seed": seed, "run": run, "drawn": [classes[d] for d in drawn], "truth": truth.tolist(),
           "hits": hits, "absent_share": absent, "train_images": len(items), "seconds": time.time() - t0}
    cache.write_text(json.dumps(out))
    return out


def summarise(results: list[dict]) -> dict:
    first = results[0]
    truth = np.array(first["truth"])
    out = {"seeds": [r["seed"] for r in results], "drawn": first["drawn"], "n": len(truth), "methods": {}}
    for m in [*METHODS, "prompts_of_40", "ensemble_of_40"]:
        h = np.array([r["hits"][m] for r in results])
        per_seed = h.mean(1)
        recall = {c: float(h[:, truth == i].mean()) for i, c in enumerate(first["drawn"])}
        out["methods"][m] = {"top1": float(h.mean()), "ci95": seed_image_bootstrap(h),
                             "std": float(statistics.stdev(per_seed)) if len(per_seed) > 1 else 0.0,
                             "recall": recall}
    for m in ("prompts", "ensemble"):
        out["methods"][m + "_of_40"]["absent_share"] = statistics.fmean(r["absent_share"][m] for r in results)
    return out


LABELS = {"supervised": "supervised ViT (the world's ceiling)", "probe": "linear probe of CLIP's image embeddings",
          "centroids": "zero-shot, training-description centroids", "prompts": "zero-shot, the task's prompt",
          "ensemble": "zero-shot, the template ensemble", "prompts_of_40": "zero-shot, the task's prompt, of 40",
          "ensemble_of_40": "zero-shot, the template ensemble, of 40"}


def markdown(s: dict) -> str:
    drawn = s["drawn"]
    head = "| classifier | top-1 [95% CI] | " + " | ".join(c.replace("_", " ") for c in drawn) + " |"
    lines = [head, "|---" * (len(drawn) + 2) + "|"]
    for m, r in s["methods"].items():
        lo, hi = r["ci95"]
        extra = f" (absent {100 * r['absent_share']:.0f}%)" if "absent_share" in r else ""
        lines.append(f"| {LABELS[m]} | {100 * r['top1']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]{extra} | "
                     + " | ".join(f"{100 * r['recall'][c]:.0f}" for c in drawn) + " |")
    return "\n".join(lines) + "\n"


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = list(s["methods"])
    fig, ax = plt.subplots(figsize=(10, 4.4))
    t = [100 * s["methods"][m]["top1"] for m in ms]
    err = [[t[i] - 100 * s["methods"][m]["ci95"][0] for i, m in enumerate(ms)],
           [100 * s["methods"][m]["ci95"][1] - t[i] for i, m in enumerate(ms)]]
    colours = ["tab:orange" if m.endswith("_of_40") else "tab:blue" for m in ms]
    ax.barh(range(len(ms)), t, xerr=err, color=colours, capsize=3)
    ax.axvline(100 / len(s["drawn"]), color="grey", ls="--", label=f"chance of the {len(s['drawn'])} drawn")
    ax.axvline(100 / 40, color="grey", ls=":", label="chance of 40")
    ax.set_yticks(range(len(ms)), [LABELS[m] for m in ms])
    ax.invert_yaxis()
    ax.set_xlim(0, max(t) * 1.6)
    ax.set_xlabel(f"top-1 % (blue: among the {len(s['drawn'])} drawn classes; orange: of all 40)\n"
                  f"n = {s['n']} test images, seeds {', '.join(map(str, s['seeds']))}; bootstrap 95% CI")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    lay = build_data(args)
    results = [measure(seed, args, lay) for seed in args.seeds]
    s = summarise(results)
    s["minutes"] = (time.time() - t0) / 60
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "world_probe.json").write_text(json.dumps(s, indent=1))
    md = markdown(s)
    (args.out / "world_probe.md").write_text(md)
    plot(s, args.out / "world_probe.png")
    print(md)
    print(f"{s['minutes']:.1f} min → {args.out}/world_probe.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
