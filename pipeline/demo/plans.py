"""The demo's planners: each looks at what is on disk and returns the console-script step to run
(a `Step`), a string saying what it waits for, an in-process `Outcome`, or None (not applicable).
Adding a stage = one planner function in `PLANNERS`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from focusclip.pipeline.demo.layout import (DemoOptions, Layout, Outcome, Step, find_real_mpii, real_images,
                                            results_path)


def plan_synth(opt: DemoOptions, lay: Layout) -> Step | str:
    return Step("focus-data", ("synth", "-o", str(lay.world), "--n-train", str(opt.n_train),
                               "--n-eval", str(opt.n_eval), "--seed", str(opt.seed), "--clutter", str(opt.clutter)),
                lay.world_report, f"generate {opt.n_train} training images + eval sets")


def plan_convert(opt: DemoOptions, lay: Layout) -> Step | str:
    if not lay.mat.is_file():
        return f"needs {lay.mat} (synth)"
    return Step("focus-data", ("convert", "mpii", str(lay.mat), "-o", str(lay.synth_annotations),
                               "--images", str(lay.world_images)),
                lay.synth_annotations, "MPII-layout .mat → annotations.jsonl")


def plan_convert_real(opt: DemoOptions, lay: Layout) -> Step | str | None:
    if opt.mpii_dir is None:
        return None
    src = find_real_mpii(opt.mpii_dir)
    if src is None:
        return f"no MPII .mat or mmpose/HRNet JSON in MPII_DIR={opt.mpii_dir}"
    args = ["convert", "mpii", str(src), "-o", str(lay.real_annotations), "--images", str(real_images(opt.mpii_dir))]
    return Step("focus-data", tuple(args), lay.real_annotations, f"real MPII {src.name} → annotations")


def plan_drawn_task(opt: DemoOptions, lay: Layout) -> Outcome | str:
    """In-process: the focus-eval task of the synthetic test images among the drawn classes only."""
    from focusclip.pipeline.demo.drawn import write_drawn_task

    return write_drawn_task(lay)


def plan_merge(opt: DemoOptions, lay: Layout) -> Outcome:
    """In-process, not a console script: one annotations file and one image folder for what follows."""
    from focusclip.pipeline.demo.merge import merge_annotations

    return merge_annotations(opt, lay)


def plan_heatmaps(opt: DemoOptions, lay: Layout) -> Step | str:
    if not lay.annotations.is_file():
        return f"needs {lay.annotations} (convert)"
    return Step("focus-data", ("heatmaps", str(lay.annotations), "--images", str(lay.images),
                               "-o", str(lay.heatmaps), "--device", "cpu"),
                lay.heatmaps / "report.json", "ROI heatmaps (docs/design.md §3.3) → PNGs")


def plan_describe(opt: DemoOptions, lay: Layout) -> Step | str:
    if not lay.annotations.is_file():
        return f"needs {lay.annotations} (convert)"
    return Step("focus-data", ("describe", str(lay.annotations), "-o", str(lay.descriptions),
                               "--backend", "template"),
                lay.descriptions.with_suffix(".report.json"), "pose descriptions, offline template describer")


def plan_filter(opt: DemoOptions, lay: Layout) -> Step | str:
    if not lay.descriptions.is_file():
        return f"needs {lay.descriptions} (describe)"
    return Step("focus-data", ("filter", str(lay.descriptions), "--annotations", str(lay.annotations),
                               "-o", str(lay.kept)),
                lay.kept.with_suffix(".report.json"), "keep sound descriptions that agree with the keypoints")


def plan_publish(opt: DemoOptions, lay: Layout) -> Step | str:
    kept = lay.kept if lay.kept.is_file() else lay.descriptions
    if not kept.is_file():
        return f"needs {lay.kept} (filter)"
    return Step("focus-data", ("publish", "--annotations", str(lay.annotations),
                               "--descriptions", f"template={kept}", "-o", str(lay.published)),
                lay.published / "README.md", "hub-ready dataset folder (parquet + card), no push")


def plan_train(model: str, opt: DemoOptions, lay: Layout, run: str | None = None,
               seed: int | None = None) -> Step | str:
    """Train `configs/mini-<model>.yaml` on the demo's data into `train/<run>` (default: the model)."""
    config = opt.configs / f"mini-{model}.yaml"
    if not config.is_file():
        return f"needs {config} (focus-train configs)"
    dataset = next((p for p in (lay.published / "README.md", lay.kept, lay.descriptions) if p.is_file()), None)
    if dataset is None:
        return f"needs {lay.published} or {lay.kept} (publish / filter)"
    dataset = dataset.parent if dataset.name == "README.md" else dataset
    heatmaps = lay.heatmaps if (lay.heatmaps / "report.json").is_file() else "render"
    run_dir = lay.train / (run or model)
    sets = {"data.dataset": dataset, "data.annotations": lay.annotations, "data.images": lay.images,
            "data.heatmaps": heatmaps, "data.prepared": lay.prepared, "output_dir": run_dir, "train.seed": opt.seed if seed is None else seed}
    if opt.steps is not None:
        sets["train.max_steps"] = opt.steps
    args = [str(config)] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    args += [a for s in opt.train_sets for a in ("--set", s)]
    if (run_dir / "checkpoints").is_dir():   # an interrupted run continues where it stopped
        args += ["--resume", "latest"]
    # report.json is written when training ends; checkpoints/last appears at every checkpoint.
    return Step("focus-train", tuple(args), run_dir / "report.json",
                f"train the miniature {'FocusCLIP' if model.startswith('focusclip') else 'CLIP'} ({config.name})")


# Only what the training descriptions can teach: activities. (The synthetic UTKFace set stays in the
# world for its reader, but no description names an age, so a zero-shot age task measured nothing.)
SYNTH_TASKS = ("stanford40-action",)


def plan_eval(run: str, opt: DemoOptions, lay: Layout, real: bool = False,
              output: Path | None = None) -> Step | str | None:
    """Zero-shot evaluation of `train/<run>` on the synthetic sets (or the real ones under DATA_ROOT)."""
    if real and opt.data_root is None:
        return None
    ckpt = lay.train / run / "checkpoints" / "last"
    if not (lay.train / run / "report.json").is_file():
        return f"needs {ckpt} (focus-train)"
    root = opt.data_root if real else lay.eval_root
    output = output or results_path(lay, run, real)
    args = [str(ckpt), "--data-root", str(root), "-o", str(output), "--workers", "0"]
    if real:
        return Step("focus-eval", tuple(args), output, f"zero-shot {run} on real datasets under {root}")
    from focusclip.pipeline.demo.drawn import DRAWN_TASK

    args += [a for t in SYNTH_TASKS for a in ("--task", t)]
    tasks = SYNTH_TASKS
    if lay.drawn_task.is_file():    # the same test images among the drawn classes only (pipeline/demo/drawn.py)
        args += ["--task-file", str(lay.drawn_task)]
        tasks += (DRAWN_TASK,)
    return Step("focus-eval", tuple(args), output, f"zero-shot {run} on the synthetic Stanford 40 set",
                complete=lambda results: _has_tasks(results, tasks))


def _has_tasks(results: Path, wanted: tuple[str, ...] = SYNTH_TASKS) -> bool:
    """focus-eval writes results as tasks finish; the step is done when every task is in."""
    try:
        tasks = json.loads(results.read_text(encoding="utf-8")).get("tasks", {})
    except (OSError, ValueError):
        return False
    return all(t in tasks for t in wanted)


PLANNERS: dict[str, Callable[[DemoOptions, Layout], Step | Outcome | str | None]] = {
    "synth": plan_synth,
    "convert": plan_convert,
    "convert-real-mpii": plan_convert_real,
    "merge": plan_merge,
    "heatmaps": plan_heatmaps,
    "describe": plan_describe,
    "filter": plan_filter,
    "publish": plan_publish,
    "train-clip": lambda o, l: plan_train("clip", o, l),
    "train-focusclip": lambda o, l: plan_train("focusclip", o, l),
    "drawn-task": plan_drawn_task,
    "eval-clip": lambda o, l: plan_eval("clip", o, l),
    "eval-focusclip": lambda o, l: plan_eval("focusclip", o, l),
    "eval-clip-real": lambda o, l: plan_eval("clip", o, l, real=True),
    "eval-focusclip-real": lambda o, l: plan_eval("focusclip", o, l, real=True),
}
