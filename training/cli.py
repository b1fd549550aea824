"""The `focus-train` console script: `focus-train CONFIG.yaml [--set KEY=VALUE ...] [--resume latest|PATH]`.

One process, or many with `torchrun --nproc_per_node N $(which focus-train) CONFIG.yaml` (DDP).
The config is read and checked before torch is imported, so a bad config fails in a blink.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.cli import SetOpt, Version
from focusclip.data.errors import run_cli

HELP = ("Train FocusCLIP or the CLIP baseline from a YAML config (configs/*.yaml; docs/training.md). "
        "Many GPUs: torchrun --nproc_per_node N $(which focus-train) CONFIG.yaml.")
app = typer.Typer(pretty_exceptions_enable=False, help=HELP)

ConfigArg = Annotated[Path, typer.Argument(help="Training config YAML (configs/focusclip.yaml, …).")]
ResumeOpt = Annotated[Optional[str], typer.Option(
    "--resume", help="'latest' (OUTPUT_DIR/checkpoints/last) or a checkpoint/run directory.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Start over in an output_dir that holds checkpoints.")]
CheckOpt = Annotated[bool, typer.Option(
    "--check", help="Validate the config and data paths, say where each tower's weights come from "
                    "(downloads nothing), then exit.")]


@app.command(help=HELP)
def main_command(config: ConfigArg, set_: SetOpt = None, resume: ResumeOpt = None, force: ForceOpt = False,
                 check: CheckOpt = False, version: Version = None) -> None:
    from focusclip.training.config import check_config, load_config
    from focusclip.training.factory import resolve_sources

    cfg = load_config(config, set_ or [])
    check_config(cfg, str(config))
    # where each tower comes from, before torch is imported: a tower that cannot be had fails in a blink
    sources = resolve_sources(cfg) if (check or resume is None) else None
    if check:
        typer.echo(f"ok: {config} ({cfg.model.name}, output_dir {cfg.output_dir})")
        for name, src in sources.items():
            typer.echo(f"  {name} tower: {src.describe()}")
        tok = "the text tower's" if sources["text"].kind != "random" else "WordPiece trained on the descriptions"
        typer.echo(f"  tokenizer: {tok}")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")   # tokenizers in forked data workers
    from focusclip.training.trainer import run_train

    report = run_train(cfg, resume=resume, force=force, sources=sources)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"trained {report.counts.get('steps', 0)} steps → {report.extra.get('checkpoint')}", err=True)


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
