"""The `focus-train` console script (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError, run_cli

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help="(not built yet)")
def main_command() -> None:
    raise FocusError("this command is not built yet")


def main() -> None:
    run_cli(app)
