"""The `focus-data` console script: one Typer app, one command module per stage."""
from __future__ import annotations

import typer

from data.errors import run_cli
from pipeline.commands import convert, demo, describe, filter, frames, heatmaps, publish, synth

app = typer.Typer(
    name="focus-data",
    help="Build the MPII Pose Descriptions dataset: convert → heatmaps → describe → filter → publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (convert, heatmaps, describe, filter, publish, synth, frames, demo):
    module.register(app)


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
