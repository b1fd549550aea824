"""`focus-data publish` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("publish", help="(not built yet)")
    def publish() -> None:
        raise FocusError("focus-data publish is not built yet")
