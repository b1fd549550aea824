"""`focus-data demo` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("demo", help="(not built yet)")
    def demo() -> None:
        raise FocusError("focus-data demo is not built yet")
