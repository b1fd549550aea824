"""`focus-data frames` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("frames", help="(not built yet)")
    def frames() -> None:
        raise FocusError("focus-data frames is not built yet")
