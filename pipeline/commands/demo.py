"""`focus-data demo -o runs/demo`: the whole pipeline on the synthetic world, resumable."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.core.errors import fail
from focusclip.pipeline.commands.options import Force


def register(app: typer.Typer) -> None:
    @app.command("demo", help="Run the whole pipeline end to end on a generated world: synth → convert → "
                              "heatmaps → describe → filter → publish → focus-train (CLIP, FocusCLIP) → "
                              "focus-eval → report. A rerun reuses finished steps.")
    def demo(
        out: Annotated[Optional[Path], typer.Option(
            "-o", "--output", "--out", help="Run folder (default runs/demo; --quick: runs/demo-quick).")] = None,
        quick: Annotated[bool, typer.Option(
            "--quick", metavar="", help="A first look in a few minutes: 6,000 training images and 800 steps "
                                        "per training into runs/demo-quick (options given win).")] = False,
        n_train: Annotated[Optional[int], typer.Option(
            "--n-train", help="Synthetic training images (default 12000; --quick: 6000).")] = None,
        n_eval: Annotated[Optional[int], typer.Option(
            "--n-eval", help="Test images per synthetic eval set (default 280).")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the world and of training.")] = 0,
        clutter: Annotated[float, typer.Option("--clutter", help="Background distractors of the world (0 = none).")] = 1.0,
        until: Annotated[Optional[str], typer.Option("--until", help="Stop after this step (e.g. publish).")] = None,
        steps: Annotated[Optional[int], typer.Option(
            "--steps", help="Optimizer steps of both trainings (0: the configs' own, 3000; --quick: 800).")] = None,
        train_set: Annotated[Optional[list[str]], typer.Option(
            "--set", "--train-set", help="Config override KEY=VALUE for both training runs (repeatable), "
                                         "e.g. --set train.batch_size=16.")] = None,
        mpii_dir: Annotated[Optional[Path], typer.Option(
            "--mpii-dir", help="Real MPII folder (.mat or HRNet/mmpose JSON + images/); default $MPII_DIR.")] = None,
        mpii_limit: Annotated[int, typer.Option("--mpii-limit", help="Real MPII images used at most.")] = 1000,
        data_root: Annotated[Optional[Path], typer.Option(
            "--data-root", help="Real eval datasets (official layouts); default $DATA_ROOT.")] = None,
        force: Force = False,
    ) -> None:
        from focusclip.pipeline.demo import run_demo
        from focusclip.pipeline.demo.layout import demo_options

        opt = demo_options(quick, out=out, n_train=n_train, n_eval=n_eval, seed=seed, clutter=clutter,
                           until=until, steps=steps, train_sets=tuple(train_set or ()),
                           mpii_dir=mpii_dir or _env_path("MPII_DIR"), mpii_limit=mpii_limit,
                           data_root=data_root or _env_path("DATA_ROOT"), force=force)
        report = run_demo(opt, echo=typer.echo)
        failed = [s["name"] for s in report.extra["steps"] if s["status"] == "failed"]
        if failed:
            raise fail(f"step(s) {', '.join(failed)} failed", str(opt.out / "logs"),
                       "read the step's log, fix, and rerun: finished steps are kept")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    if not value:
        return None
    path = Path(value)
    if not path.is_dir():
        raise fail(f"${name} is not a folder", value, f"unset {name} or point it at the dataset folder")
    return path
