"""The demo's shared types and paths: its options, a step, an outcome, and where every file of a run
lives (`Layout`). The planners, the runner and the merge and report steps all import this module."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

REPO = Path(__file__).resolve().parents[2]
MARKER = "demo.json"   # written in the run folder so --force only ever deletes a demo folder


@dataclass(frozen=True)
class DemoOptions:
    out: Path = Path("runs/demo")
    n_train: int = 12000
    n_eval: int = 280
    seed: int = 0
    clutter: float = 1.0                # background distractors of the synthetic world (0 = none)
    until: str | None = None            # stop after this step (e.g. "publish": data only)
    steps: int | None = None            # optimizer steps of each training (None: the mini configs' own)
    train_sets: tuple[str, ...] = ()    # extra `--set k=v` for both training runs
    mpii_dir: Path | None = None        # real MPII (.mat or HRNet/mmpose JSON + images/)
    mpii_limit: int = 1000              # real MPII images added to the training set at most
    data_root: Path | None = None       # real evaluation datasets in their official layouts
    configs: Path = REPO / "configs"
    force: bool = False


# `focus-data demo --quick` (`make demo-quick`): a first look in a few minutes (docs/demo.md), with the
# budget of one run of benchmarks/focus_effect.py (a 6,000-image world, 800 steps), whose 5-seed result
# docs/focus-effect.md reports; the same test set size as the full demo, its own folder. (2,000 images
# overfit: the validation loss rises after ~250 steps.) Options given on the command line win over these.
QUICK = {"out": Path("runs/demo-quick"), "n_train": 6000, "n_eval": 280, "steps": 800}


def demo_options(quick: bool = False, **given) -> DemoOptions:
    """The options of `focus-data demo`: those given (None: not given), the rest from the quick preset
    with `quick`, else DemoOptions' defaults. `steps=0` means the configs' own number of steps."""
    values = {**(QUICK if quick else {}), **{k: v for k, v in given.items() if v is not None}}
    if values.get("steps") == 0:
        values["steps"] = None
    return DemoOptions(**values)


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
    "published": "data/published", "prepared": "data/prepared", "train": "train", "logs": "logs", "report": "report",
    "drawn_task": "tasks/stanford40-drawn.json", "drawn_csv": "tasks/stanford40-drawn.csv",
}


def checkpoint(lay: Layout, model: str) -> Path:
    return lay.train / model / "checkpoints" / "last"


def results_path(lay: Layout, model: str, real: bool = False) -> Path:
    return lay.out / f"results-{model}{'-real' if real else ''}.json"


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
