"""`focus-data convert` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("convert", help="(not built yet)")
    def convert() -> None:
        raise FocusError("focus-data convert is not built yet")
