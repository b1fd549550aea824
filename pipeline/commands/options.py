"""Option types shared by several commands, defined once."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Force = Annotated[bool, typer.Option("--force", help="Redo finished work instead of skipping it.")]
Shard = Annotated[Optional[str], typer.Option("--shard", help="Process shard I of N (e.g. 0/4).")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
Output = Annotated[Path, typer.Option("-o", "--output", help="Output path.")]
Limit = Annotated[Optional[int], typer.Option("--limit", help="Process at most N items.")]
