"""`focus-data synth -o DIR`: the synthetic world (MPII-layout training set + Stanford 40 / UTKFace eval sets)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.pipeline.commands.options import Force


def register(app: typer.Typer) -> None:
    @app.command("synth", help="Generate synthetic people: an MPII-layout .mat with JPEGs, and "
                               "Stanford 40 / UTKFace-layout evaluation sets. Deterministic given --seed.")
    def synth(
        output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
        n_train: Annotated[int, typer.Option("--n-train", help="Training-world images (MPII layout).")] = 2000,
        n_eval: Annotated[int, typer.Option("--n-eval", help="Test images per evaluation set.")] = 280,
        seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same world.")] = 0,
        clutter: Annotated[float, typer.Option("--clutter", help="Scale of background distractors (0 = none).")] = 1.0,
        bystanders: Annotated[int, typer.Option("--bystanders", help="Unannotated people beside the subjects of each "
                                                "training and Stanford 40 image, each doing another activity "
                                                "(in no annotation, heatmap or description).")] = 0,
        force: Force = False,
        workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Processes that draw the training "
                                                       "images (default: one per core; the world is the same).")] = None,
    ) -> None:
        from focusclip.pipeline.synth import run_synth, world_paths

        report = run_synth(output, n_train=n_train, n_eval=n_eval, seed=seed, clutter=clutter, force=force,
                           workers=workers, bystanders=bystanders)
        c = report.counts
        verb = "kept (already generated)" if report.extra.get("reused") else "wrote"
        typer.echo(f"synth: {verb} {c.get('images', 0)} images with {c.get('people', 0)} people "
                   f"({c.get('labelled_joints', 0)} labelled joints) → {world_paths(output)['mat']}")
        typer.echo(f"synth: eval sets: Stanford 40 {c.get('stanford40_test', 0)} test images, "
                   f"UTKFace {c.get('utkface_images', 0)} images → {world_paths(output)['eval_root']}")
