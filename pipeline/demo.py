"""`focus-data demo`: the whole pipeline end to end on the synthetic world, as separate processes.

    synth → convert → heatmaps → describe (template) → filter → publish → focus-train ×2 → focus-eval ×2
    → report (overlays, loss curves, results chart, table)

Every step is a console-script call (`focus-data`, `focus-train`, `focus-eval`), so the pipeline never
imports training or eval code. A step is planned just before it runs from what is on disk, is skipped
when its output exists (a rerun reuses finished work), waits when an input is missing, and is marked
"not built yet" when its command is still a stub. Adding a stage = one planner function in `PLANNERS`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from data.errors import fail
from data.io import Report, write_json

REPO = Path(__file__).resolve().parents[1]
MARKER = "demo.json"   # written in --out so --force only ever deletes a demo folder


@dataclass(frozen=True)
class DemoOptions:
    out: Path = Path("runs/demo")
    n_train: int = 6000
    n_eval: int = 280
    seed: int = 0
    clutter: float = 1.0                # background distractors of the synthetic world (0 = none)
    until: str | None = None            # stop after this step (e.g. "publish": data only)
    # The tiny configs' 4 epochs leave both models at the collapsed start of contrastive training on
    # this world (image–text loss at log(2N−1)); CLIP starts aligning after about 2,000 steps.
    epochs: int | None = 10             # None: the tiny configs' own
    train_sets: tuple[str, ...] = ()    # extra `--set k=v` for both training runs
    mpii_dir: Path | None = None        # real MPII (.mat or HRNet/mmpose JSON + images/)
    mpii_limit: int = 1000              # real MPII images added to the training set at most
    data_root: Path | None = None       # real evaluation datasets in their official layouts
    configs: Path = REPO / "configs"
    force: bool = False


@dataclass(frozen=True)
class Step:
    """One console-script call. `done` existing (and passing `complete`, when given) means the
    step's work is finished."""
    script: str
    args: tuple[str, ...]
    done: Path
    what: str
    complete: Callable[[Path], bool] | None = None

    def is_done(self) -> bool:
        return self.done.exists() and (self.complete is None or self.complete(self.done))


@dataclass
class Outcome:
    name: str
    status: str          # ran | reused | not built yet | waiting | failed
    detail: str = ""
    seconds: float = 0.0


class Runner(Protocol):
    def __call__(self, script: str, args: list[str], log: Path) -> tuple[int, str]:
        """Run `script args`; return the exit status and the captured stdout."""


@dataclass(frozen=True)
class Layout:
    """Every path of a demo run, under `out`."""
    out: Path

    def __getattr__(self, name: str) -> Path:
        rel = _LAYOUT.get(name)
        if rel is None:
            raise AttributeError(name)
        return self.out / rel


_LAYOUT = {
    "world": "world", "world_report": "world/report.json", "mat": "world/mpii/mpii_human_pose_v1_u12_1.mat",
    "world_images": "world/mpii/images", "world_truth": "world/mpii/truth.jsonl", "eval_root": "world/eval",
    "synth_annotations": "data/synthetic.jsonl", "real_annotations": "data/mpii-real.jsonl",
    "annotations": "data/annotations.jsonl", "images": "data/images", "heatmaps": "data/heatmaps",
    "descriptions": "data/descriptions/template.jsonl", "kept": "data/descriptions/template.kept.jsonl",
    "published": "data/published", "train": "train", "logs": "logs", "report": "report",
}


def checkpoint(lay: Layout, model: str) -> Path:
    return lay.train / model / "checkpoints" / "last"


def results_path(lay: Layout, model: str, real: bool = False) -> Path:
    return lay.out / f"results-{model}{'-real' if real else ''}.json"


# ---- planners: each returns a Step, or a string saying what it waits for ---------------------------

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


def plan_merge(opt: DemoOptions, lay: Layout) -> Outcome:
    """In-process, not a console script: one annotations file and one image folder for what follows."""
    from pipeline.demo_merge import merge_annotations

    return merge_annotations(opt, lay)


def plan_heatmaps(opt: DemoOptions, lay: Layout) -> Step | str:
    if not lay.annotations.is_file():
        return f"needs {lay.annotations} (convert)"
    return Step("focus-data", ("heatmaps", str(lay.annotations), "--images", str(lay.images),
                               "-o", str(lay.heatmaps), "--device", "cpu"),
                lay.heatmaps / "report.json", "ROI heatmaps (DESIGN §3.3) → PNGs")


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
    """Train `configs/tiny-<model>.yaml` on the demo's data into `train/<run>` (default: the model)."""
    config = opt.configs / f"tiny-{model}.yaml"
    if not config.is_file():
        return f"needs {config} (focus-train configs)"
    dataset = next((p for p in (lay.published / "README.md", lay.kept, lay.descriptions) if p.is_file()), None)
    if dataset is None:
        return f"needs {lay.published} or {lay.kept} (publish / filter)"
    dataset = dataset.parent if dataset.name == "README.md" else dataset
    heatmaps = lay.heatmaps if (lay.heatmaps / "report.json").is_file() else "render"
    run_dir = lay.train / (run or model)
    sets = {"data.dataset": dataset, "data.annotations": lay.annotations, "data.images": lay.images,
            "data.heatmaps": heatmaps, "output_dir": run_dir, "train.seed": opt.seed if seed is None else seed}
    if opt.epochs is not None:
        sets["train.epochs"] = opt.epochs
    args = [str(config)] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    args += [a for s in opt.train_sets for a in ("--set", s)]
    if (run_dir / "checkpoints").is_dir():   # an interrupted run continues where it stopped
        args += ["--resume", "latest"]
    # report.json is written when training ends; checkpoints/last appears at every checkpoint.
    return Step("focus-train", tuple(args), run_dir / "report.json",
                f"train tiny {'FocusCLIP' if model == 'focusclip' else 'CLIP'} ({config.name})")


SYNTH_TASKS = ("stanford40-action", "utkface-age")


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
    if not real:
        args += [a for t in SYNTH_TASKS for a in ("--task", t)]
    where = f"real datasets under {root}" if real else "the synthetic Stanford 40 / UTKFace sets"
    return Step("focus-eval", tuple(args), output, f"zero-shot {run} on {where}",
                complete=None if real else _has_tasks)


def _has_tasks(results: Path) -> bool:
    """focus-eval writes results as tasks finish; the step is done when every task is in."""
    try:
        tasks = json.loads(results.read_text(encoding="utf-8")).get("tasks", {})
    except (OSError, ValueError):
        return False
    return all(t in tasks for t in SYNTH_TASKS)


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
    "eval-clip": lambda o, l: plan_eval("clip", o, l),
    "eval-focusclip": lambda o, l: plan_eval("focusclip", o, l),
    "eval-clip-real": lambda o, l: plan_eval("clip", o, l, real=True),
    "eval-focusclip-real": lambda o, l: plan_eval("focusclip", o, l, real=True),
}


def real_images(mpii_dir: Path) -> Path:
    """MPII images: `images/` as the release unpacks, else the folder itself (images beside the JSON)."""
    return mpii_dir / "images" if (mpii_dir / "images").is_dir() else mpii_dir


def find_real_mpii(folder: Path) -> Path | None:
    """The MPII annotation file in a user's folder: the release .mat first, then an mmpose/HRNet JSON."""
    for pattern in ("mpii_human_pose_v1_u12_1.mat", "*.mat", "annotations/mpii_train.json",
                    "annot/train.json", "*.json", "annotations/*.json", "annot/*.json"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


# ---- running ----------------------------------------------------------------------------------------

class SubprocessRunner:
    """Runs the console scripts installed beside this Python (the project's .venv/bin), teeing stderr
    (progress bars, errors) to the terminal and everything to a log file."""

    def __init__(self, stream_stderr: bool = True):
        self.stream_stderr = stream_stderr

    def __call__(self, script: str, args: list[str], log: Path) -> tuple[int, str]:
        exe = Path(sys.executable).parent / script
        cmd = [str(exe) if exe.exists() else (shutil.which(script) or script), *args]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as logf:
            logf.write(f"$ {' '.join(cmd)}\n".encode())
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except FileNotFoundError:
                raise fail(f"console script {script} not found", str(exe), "run `make install` first") from None
            out: list[bytes] = []
            err = threading.Thread(target=_pump, args=(proc.stderr, logf, sys.stderr if self.stream_stderr else None, None))
            err.start()
            _pump(proc.stdout, logf, None, out)
            err.join()
            return proc.wait(), b"".join(out).decode("utf-8", "replace")


def _pump(src, logf, terminal, keep: list[bytes] | None) -> None:
    for chunk in iter(lambda: src.read1(4096), b""):
        logf.write(chunk)
        if keep is not None:
            keep.append(chunk)
        if terminal is not None:
            terminal.buffer.write(chunk)
            terminal.flush()


def _not_built(runner: Runner, step: Step, log: Path) -> bool:
    """A command that is still a stub: its --help says "not built yet" (asked before running, so a
    stub's usage error never reaches the terminal)."""
    probe = [step.args[0], "--help"] if step.script == "focus-data" else ["--help"]
    _, text = runner(step.script, probe, log)
    return "not built yet" in text


def run_step(name: str, step: Step, runner: Runner, lay: Layout, echo: Callable[[str], None]) -> Outcome:
    if step.is_done():
        return Outcome(name, "reused", f"{step.done} exists")
    log = lay.logs / f"{name}.log"
    if _not_built(runner, step, log):
        return Outcome(name, "not built yet", f"`{step.script} {step.args[0]}` is still a stub")
    t0 = time.perf_counter()
    rc, out = runner(step.script, list(step.args), log)
    seconds = time.perf_counter() - t0
    for line in out.strip().splitlines()[-6:]:
        echo(f"    {line}")
    if rc == 0 and step.is_done():
        return Outcome(name, "ran", step.what, seconds)
    why = f"exit {rc}" if rc else f"exit 0 but no {step.done}"
    return Outcome(name, "failed", f"{why}; see {log}", seconds)


def prepare(opt: DemoOptions, lay: Layout) -> None:
    """--force starts from nothing, but only ever deletes a folder an earlier demo made."""
    options = {k: str(v) for k, v in opt.__dict__.items() if k not in ("force", "until")}
    marker = lay.out / MARKER
    if opt.force and lay.out.exists():
        if not marker.is_file():
            raise fail("is not a demo folder (no demo.json), so --force will not delete it", str(lay.out),
                       "choose another --out")
        shutil.rmtree(lay.out)
    if marker.is_file():   # reusing finished steps is only right for the same options
        before = json.loads(marker.read_text(encoding="utf-8")).get("options", {})
        changed = sorted(k for k in options if before.get(k, options[k]) != options[k])
        if changed:
            raise fail(f"was made with other options ({', '.join(changed)})", str(lay.out),
                       "pass --force to start over, or choose another --out")
    lay.out.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"options": options})


def _one_step(name: str, plan: Step | Outcome | str | None, runner: Runner, lay: Layout,
              echo: Callable[[str], None]) -> Outcome | None:
    """A planner's answer → what happened: not applicable (None), done in-process (an Outcome),
    waiting for an input (a string), or a console-script step to run or reuse."""
    if plan is None or isinstance(plan, Outcome):
        return plan
    if isinstance(plan, str):
        return Outcome(name, "waiting", plan)
    if not plan.is_done():
        echo(f"== {name}: {plan.what}")
    return run_step(name, plan, runner, lay, echo)


def run_demo(opt: DemoOptions, runner: Runner | None = None, echo: Callable[[str], None] = print) -> Report:
    """Run every step in order; returns a report whose `extra["steps"]` lists each step's outcome."""
    from pipeline.demo_report import build_report

    runner = runner or SubprocessRunner()
    if opt.until is not None and opt.until not in PLANNERS:
        raise fail(f"--until {opt.until} is not a step", "focus-data demo", f"use one of {', '.join(PLANNERS)}")
    lay = Layout(Path(opt.out))
    prepare(opt, lay)
    report = Report("demo", {k: str(v) for k, v in opt.__dict__.items()})
    outcomes: list[Outcome] = []
    for name, planner in PLANNERS.items():
        outcome = _one_step(name, planner(opt, lay), runner, lay, echo)
        if outcome is None:
            continue
        echo(f"   {name}: {outcome.status}{' — ' + outcome.detail if outcome.detail else ''}"
             f"{f' ({outcome.seconds:.0f} s)' if outcome.seconds else ''}")
        outcomes.append(outcome)
        report.count(outcome.status.replace(" ", "_"))
        if name == opt.until:
            break
    report.extra["steps"] = [o.__dict__ for o in outcomes]
    report.extra["report_files"] = [str(p) for p in build_report(lay, echo)]
    report.save(lay.out / "report.json")
    return report
