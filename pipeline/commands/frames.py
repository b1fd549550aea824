"""`focus-data frames`: middle frames of Kinetics-400 clips for focus-eval (a thin layer over run_frames)."""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.pipeline.commands.options import Force, Limit


class KineticsSplit(str, Enum):
    """Kinetics-400's clip folders (kinetics400/videos/<split>/); focus-eval reads `val`."""
    train = "train"
    val = "val"
    test = "test"


def register(app: typer.Typer) -> None:
    @app.command("frames", help="Extract the middle frame of each Kinetics clip into "
                                "kinetics400/frames/<split>/<id>_<start>_<end>.jpg.")
    def frames(
        data_root: Annotated[Path, typer.Option("--data-root",
                                                help="The focus-eval data root (holds kinetics400/).")],
        split: Annotated[KineticsSplit, typer.Option("--split", help="Clip folder under kinetics400/videos/.")]
        = KineticsSplit.val,
        force: Force = False,
        limit: Limit = None,
        workers: Annotated[Optional[int], typer.Option("--workers", min=1,
                                                       help="Decoder threads (default: all cores).")] = None,
    ) -> None:
        from focusclip.pipeline.frames import FramesConfig, run_frames  # cv2 loads only when the command runs

        report = run_frames(FramesConfig(data_root=data_root, split=split.value, force=force, limit=limit,
                                         workers=workers or os.cpu_count() or 1))
        done = report.skipped.get("already done", 0)
        failed = sum(n for r, n in report.skipped.items() if r != "already done")
        typer.echo(f"frames: {report.counts.get('extracted', 0)} extracted, {done} already done, "
                   f"{failed} skipped → {data_root / 'kinetics400' / 'frames' / split.value}")
