"""Option types that all three console scripts share (`focus-data`, `focus-train`, `focus-eval`).

Only command modules import this (it imports typer); the library code never does.
"""
from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(value: str | None) -> str | None:
    """auto, cpu, cuda or cuda:N; anything else is a usage error that lists them."""
    if value is not None and not _DEVICE.match(value):
        raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N")
    return value


def version_callback(value: bool) -> None:
    if value:
        from focusclip import __version__

        typer.echo(f"focusclip {__version__}")
        raise typer.Exit()


# metavar="" on every on/off flag: it takes no value, so its --help line shows none (Typer 0.29 prints
# `<bool>` otherwise, which reads as if `--force true` were the way to write it).
Version = Annotated[Optional[bool], typer.Option(
    "--version", metavar="", callback=version_callback, is_eager=True, help="Print the version and exit.")]
Device = Annotated[str, typer.Option("--device", metavar="[auto|cpu|cuda|cuda:N]", callback=check_device,
                                     help="Where to compute.")]
Force = Annotated[bool, typer.Option("--force", metavar="", help="Redo finished work instead of skipping it.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a config key, e.g. --set train.epochs=2 (repeatable; values parsed as YAML).")]
