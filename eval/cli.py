"""The `focus-eval` console script: zero-shot human-centric benchmark of one model."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.cli import Device, Force, Version
from focusclip.core.errors import fail, run_cli

HELP = ("Zero-shot evaluation of a focus-train checkpoint (or any Hugging Face dual encoder) on the 12 human-centric "
        "tasks of eight datasets in their official layouts (docs/eval.md).")
app = typer.Typer(pretty_exceptions_enable=False, help=HELP)


Models = Annotated[Optional[list[str]], typer.Argument(
    metavar="MODEL", show_default=False,
    help="focus-train run dir, checkpoints/<step> dir or pushed hub id USER/NAME, or any dual encoder "
         "(CLIP, SigLIP, …) by hub id or save_pretrained folder (downloaded into the hub cache; "
         "HF_HUB_OFFLINE=1 uses the cache only), or an open_clip model open_clip:ARCH:PRETRAINED (a tag "
         "or a weights file; needs the open-clip extra). Several: scored in one pass over the images, with one "
         "comparison table and chart.")]
DataRoot = Annotated[Optional[Path], typer.Option(
    "--data-root", help="Folder holding the datasets in their official layouts.")]
Tasks = Annotated[Optional[list[str]], typer.Option("--task", help="Task id (repeatable); default all 12.")]
TaskFiles = Annotated[Optional[list[Path]], typer.Option(
    "--task-file", metavar="FILE",
    help="Your own task: a JSON task file over an ImageFolder or a CSV of path,label (repeatable; docs/eval.md). "
         "Alone, only these tasks run; with --task, both.")]
Output = Annotated[Path, typer.Option(
    "-o", "--output", help="Results JSON (results.png beside it); with several models, their comparison, "
                           "each model's results in <stem>.<model>.json beside it.")]
HFClip = Annotated[Optional[list[str]], typer.Option(
    "--hf-clip", metavar="ID_OR_DIR",
    help="A Hugging Face dual encoder named hf-clip:<id> (repeatable): a hub id (downloaded and cached; "
         "HF_HUB_OFFLINE=1 uses the cache only) or a save_pretrained folder.")]
Revision = Annotated[Optional[str], typer.Option(
    "--revision", help="Branch, tag or commit of the --hf-clip hub id (default: its main branch).")]
class ResizeMode(str, Enum):
    squash = "squash"
    letterbox = "letterbox"
    crop = "crop"


Resize = Annotated[Optional[ResizeMode], typer.Option(
    "--resize", help="Make images S×S this way instead of the checkpoint's training geometry (its data.resize).")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
Workers = Annotated[Optional[int], typer.Option(
    "--workers", min=0, help="DataLoader worker processes (default: half the cores, at most 8).")]
Limit = Annotated[Optional[int], typer.Option(
    "--limit", min=1, help="At most N images per task (evenly spaced), for quick runs.")]
Ensemble = Annotated[bool, typer.Option(
    "--ensemble", metavar="", help="Average the task's template ensemble instead of the paper's single template.")]
Compare = Annotated[Optional[list[Path]], typer.Option(
    "--compare", help="Other results.json to show beside this model in the table and chart (repeatable).")]
Predictions = Annotated[Optional[Path], typer.Option(
    "--predictions", metavar="FILE",
    help="Parquet file of every image's labels, top classes and scores per task and model (docs/eval.md).")]


class PrecisionMode(str, Enum):
    auto = "auto"
    fp32 = "fp32"


Precision = Annotated[PrecisionMode, typer.Option(
    "--precision", help="auto: image encoders under fp16 autocast on CUDA (fp32 on the CPU); fp32: never fp16.")]
ListTasks = Annotated[bool, typer.Option("--list-tasks", metavar="", help="Print the task ids and exit.")]


@app.command(help=HELP)
def evaluate(models: Models = None, data_root: DataRoot = None, task: Tasks = None, task_file: TaskFiles = None,
             output: Output = Path("results.json"), hf_clip: HFClip = None, revision: Revision = None,
             resize: Resize = None, batch_size: BatchSize = 64, workers: Workers = None, device: Device = "auto",
             force: Force = False, limit: Limit = None, ensemble: Ensemble = False, compare: Compare = None,
             precision: Precision = PrecisionMode.auto, predictions: Predictions = None, list_tasks: ListTasks = False,
             version: Version = None) -> None:
    from focusclip.eval.tasks import all_tasks, select_tasks

    if list_tasks:
        for t in all_tasks():
            typer.echo(f"{t.id:<20} {t.dataset:<11} {t.split:<5} top-{t.k}  {len(t.classes)} classes  {t.title}")
        raise typer.Exit()
    if data_root is None and (task or not task_file):
        raise typer.BadParameter("--data-root is required (only --task-file tasks need none)", param_hint="--data-root")
    if not models and not hf_clip:
        raise fail("give one model or more: a CHECKPOINT, a dual encoder or --hf-clip ID_OR_DIR", "focus-eval",
                   "name each model to evaluate; several are scored in one pass")
    select_tasks(task)  # an unknown id fails here, before torch is imported
    from focusclip.eval.run import EvalOptions, default_workers, run_eval

    opts = EvalOptions(data_root=data_root, output=output, models=tuple(models or ()), hf_clip=tuple(hf_clip or ()),
                       revision=revision, resize=resize.value if resize else None, tasks=tuple(task or ()),
                       task_files=tuple(task_file or ()), batch_size=batch_size,
                       workers=default_workers() if workers is None else workers, device=device,
                       force=force, limit=limit, ensemble=ensemble, compare=tuple(compare or ()),
                       precision=precision.value, predictions=predictions)
    report = run_eval(opts)
    typer.echo(f"wrote {output} ({report.extra.get('plot', 'no plot')})", err=True)


def main() -> None:
    run_cli(app)
