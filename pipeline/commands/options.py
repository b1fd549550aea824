"""Option types shared by several `focus-data` commands, defined once."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.cli import Device, Force, SetOpt, Version

__all__ = ["Backend", "Device", "Force", "Limit", "Output", "SetOpt", "Shard", "Split", "Version"]


class Backend(str, Enum):
    """Describe backends (pipeline/describe/backends.py)."""
    template = "template"
    openai = "openai"
    vllm = "vllm"
    transformers = "transformers"


class Split(str, Enum):
    """Annotation splits (docs/design.md §3.1)."""
    train = "train"
    val = "val"
    test = "test"


Shard = Annotated[Optional[str], typer.Option("--shard", help="Process shard I of N (e.g. 0/4).")]
Output = Annotated[Path, typer.Option("-o", "--output", help="Output path.")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Process at most N items.")]
