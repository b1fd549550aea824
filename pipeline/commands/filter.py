"""`focus-data filter` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("filter", help="(not built yet)")
    def filter() -> None:
        raise FocusError("focus-data filter is not built yet")
