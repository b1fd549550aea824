"""`focus-data synth` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("synth", help="(not built yet)")
    def synth() -> None:
        raise FocusError("focus-data synth is not built yet")
