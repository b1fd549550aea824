"""`focus-data heatmaps` (not built yet)."""
from __future__ import annotations

import typer

from data.errors import FocusError


def register(app: typer.Typer) -> None:
    @app.command("heatmaps", help="(not built yet)")
    def heatmaps() -> None:
        raise FocusError("focus-data heatmaps is not built yet")
