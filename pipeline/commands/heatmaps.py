"""`focus-data heatmaps`: ROI heatmap PNGs for every annotated image (a thin layer over run_heatmaps)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.pipeline.commands.options import Device, Force, Shard


class Mode(str, Enum):
    parts = "parts"    # the paper's ten body parts per person
    person = "person"  # one box over all of a person's labelled joints


Annotations = Annotated[Path, typer.Argument(help="annotations.jsonl from `focus-data convert`.")]
Images = Annotated[Path, typer.Option("--images", help="Folder holding the images.")]
OutDir = Annotated[Path, typer.Option("-o", "--output", help="Output folder: <image stem>.png, report.json.")]
ModeOpt = Annotated[Mode, typer.Option("--mode", help="parts (the paper's ten parts) or person (one box).")]
MinSigma = Annotated[float, typer.Option("--min-sigma", help="Smallest Gaussian sigma, in pixels.")]
Preview = Annotated[int, typer.Option("--preview", help="Also write N overlays to OUT/preview/.")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="Threads that encode PNGs (and render, "
                                                "on a CPU); default: all cores.")]


def register(app: typer.Typer) -> None:
    @app.command("heatmaps", help="Render one 8-bit grayscale ROI heatmap PNG per image (docs/design.md §3.3).")
    def heatmaps(annotations: Annotations, images: Images, output: OutDir, mode: ModeOpt = Mode.parts,
                 device: Device = "auto", min_sigma: MinSigma = 1.0, force: Force = False,
                 shard: Shard = None, preview: Preview = 0, workers: Workers = None) -> None:
        from focusclip.pipeline.heatmaps import run_heatmaps  # torch and cv2 load only when the command runs

        report = run_heatmaps(annotations, images, output, mode=mode.value, device=device,
                              min_sigma=min_sigma, force=force, shard=shard, preview=preview,
                              workers=workers)
        c, s = report.counts, report.skipped
        typer.echo(f"heatmaps: {c.get('rendered', 0)} rendered, {s.get('already done', 0)} already done, "
                   f"{s.get('missing image', 0)} missing, {s.get('unreadable image', 0)} unreadable, "
                   f"{c.get('bad_coordinates', 0)} bad coordinates → {output}")
