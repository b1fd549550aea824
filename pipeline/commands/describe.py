"""`focus-data describe` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("describe", help="(not built yet)")
    def describe() -> None:
        raise FocusError("focus-data describe is not built yet")
