"""`focus-data download`: fetch MPII and the evaluation datasets into --root (a thin layer over run_download)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.core.errors import FocusError, fail
from focusclip.pipeline.commands.options import Force

MIRROR_ENV = "FOCUSCLIP_MIRROR"


def _print(outcomes) -> None:
    for o in outcomes:
        if o.state == "failed":
            continue
        typer.echo(f"{o.name}: {o.message}")
        for w in o.warnings:
            print(f"warning: {o.name}: {w}", file=sys.stderr)
        for cmd in o.next:
            typer.echo(f"  next: {cmd}")


def _fail_if_any(outcomes) -> None:
    failed = [o for o in outcomes if o.state == "failed"]
    if len(failed) == 1 and len(outcomes) == 1:
        raise FocusError(failed[0].message)
    for o in failed:
        print(f"error: {o.name}: {' '.join(o.message.split())}", file=sys.stderr)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command("download", help="Fetch MPII and the evaluation datasets into --root, in the layouts "
                                  "focus-data convert and focus-eval read (resumable, verified). "
                                  "`--list` shows each dataset's size, licence and access.")
    def download(
        names: Annotated[Optional[list[str]], typer.Argument(
            metavar="NAME...", help="mpii, stanford40, kinetics400, emotic, fer2013, ferplus, fairface, "
                                    "utkface, lagenda, or all.", show_default=False)] = None,
        root: Annotated[Optional[Path], typer.Option("--root", help="Data root (focus-eval's --data-root).")] = None,
        sources: Annotated[Optional[list[Path]], typer.Option(
            "--from", help="A file you downloaded by hand (an archive or the file itself); repeatable.")] = None,
        mirror: Annotated[Optional[str], typer.Option(
            "--mirror", envvar=MIRROR_ENV, help="Replace the sources' scheme and host, e.g. "
                                                "http://mirror.example.org/datasets (env FOCUSCLIP_MIRROR).")] = None,
        keep_archives: Annotated[bool, typer.Option(
            "--keep-archives", metavar="", help="Keep the downloaded archives in ROOT/.downloads/NAME/.")] = False,
        retries: Annotated[int, typer.Option("--retries", min=0, help="Resumed retries per file.")] = 3,
        allow_redirect: Annotated[Optional[list[str]], typer.Option(
            "--allow-redirect", metavar="HOST", help="Follow redirects to HOST too (repeatable); by default a "
                                                     "redirect is followed only to the host asked, never "
                                                     "from https to http.")] = None,
        show_list: Annotated[bool, typer.Option("--list", metavar="", help="List the datasets and exit.")] = False,
        force: Force = False,
    ) -> None:
        from focusclip.pipeline.download import DownloadOptions, format_list, run_download

        if show_list:
            typer.echo(format_list())
            return
        if root is None:
            raise fail("--root is required", "--root", "e.g. focus-data download all --root ~/data/eval")
        opts = DownloadOptions(root=root, mirror=mirror or None, sources=tuple(sources or ()),
                               keep_archives=keep_archives, force=force, retries=retries,
                               allow_redirect=tuple(allow_redirect or ()))
        outcomes = run_download(list(names or ()), opts)
        _print(outcomes)
        _fail_if_any(outcomes)
