"""`focus-data convert mpii|emotic`: thin commands over `pipeline.convert`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.core.report import Report, report_path_for
from focusclip.pipeline.commands.options import Force, Output
from focusclip.pipeline.convert import run_convert_emotic, run_convert_mpii

convert_app = typer.Typer(help="Convert MPII or EMOTIC annotations into our records.",
                          no_args_is_help=True, add_completion=False)


@convert_app.command("mpii")
def mpii(
    src: Annotated[Path, typer.Argument(help="mpii_human_pose_v1_u12_1.mat, or an HRNet/mmpose JSON list.")],
    output: Output,
    split_json_dir: Annotated[Optional[Path], typer.Option(
        "--split-json-dir", help="Folder with HRNet valid.json / mmpose mpii_val.json: their images become "
                                 "val (default: a fixed 15% hash split of the train images).")] = None,
    images: Annotated[Optional[Path], typer.Option(
        "--images", help="MPII images folder: record width/height from file headers, report missing images.")] = None,
    force: Force = False,
) -> None:
    """MPII annotations → annotations.jsonl (one record per image, 0-based coordinates)."""
    report = run_convert_mpii(src, output, split_json_dir=split_json_dir, images=images, force=force)
    c = report.counts
    _done(report, output, f"{c.get('images', 0)} images (train {c.get('split_train', 0)}, "
                          f"val {c.get('split_val', 0)}, test {c.get('split_test', 0)}), "
                          f"{c.get('people', 0)} people, {c.get('labelled_joints', 0)} labelled joints")
    if report.extra.get("image_sizes"):
        print(f"warning: {report.extra['image_sizes']} (pass --images DIR to record them)", file=sys.stderr)
    missing = report.skipped.get("image file missing (record kept, size unknown)", 0)
    if missing:
        print(f"warning: {missing} annotated images are missing from {images} (see the report)", file=sys.stderr)


@convert_app.command("emotic")
def emotic(
    mat: Annotated[Path, typer.Argument(help="EMOTIC Annotations/Annotations.mat.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder for {train,val,test}.jsonl.")],
    force: Force = False,
) -> None:
    """EMOTIC annotations → DIR/{train,val,test}.jsonl (one record per person)."""
    report = run_convert_emotic(mat, output, force=force)
    c = report.counts
    _done(report, output, ", ".join(f"{s} {c.get(f'{s}_people', 0)} people" for s in ("train", "val", "test")))


def _done(report: Report, output: Path, summary: str) -> None:
    verb = "kept (already converted; --force redoes)" if report.extra.get("reused") else "wrote"
    print(f"{verb} {output}: {summary}; report {report_path_for(output)}")


def register(app: typer.Typer) -> None:
    app.add_typer(convert_app, name="convert")
