"""The `focus-data` console script: one Typer app, one command module per stage."""
from __future__ import annotations

import typer
from typer.core import TyperGroup

from focusclip.core.errors import run_cli
from focusclip.pipeline.commands import convert, demo, describe, download, filter, frames, heatmaps, publish, synth
from focusclip.pipeline.commands.options import Version

# The order of `focus-data --help`: the stages in the order they run, then the helpers.
MODULES = (download, convert, heatmaps, describe, filter, publish, synth, frames, demo)
ORDER = ("download", "convert", "heatmaps", "describe", "filter", "publish", "synth", "frames", "demo")


class StageOrder(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        known = [n for n in ORDER if n in self.commands]
        return known + sorted(n for n in self.commands if n not in ORDER)


app = typer.Typer(
    name="focus-data",
    cls=StageOrder,
    help="Build the MPII Pose Descriptions dataset: download → convert → heatmaps → describe → filter → publish.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(version: Version = None) -> None:
    """Build the MPII Pose Descriptions dataset: download → convert → heatmaps → describe → filter → publish."""


for module in MODULES:
    module.register(app)


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
