"""Flags are shown as flags: no `<bool>` after any of our on/off options in any command's --help, through
the installed console scripts. Typer's own --help, --install-completion and --show-completion lines
keep theirs (those options are Typer's, declared by it, not by us)."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import typer

from tests.conftest import console_script

TYPERS_OWN = {"--help", "--install-completion", "--show-completion"}


def _commands() -> list[tuple[str, tuple[str, ...], set[str]]]:
    """(script, command path, our flags) for every command of the three console scripts."""
    from focusclip.eval.cli import app as eval_app
    from focusclip.pipeline.cli import app as data_app
    from focusclip.training.cli import app as train_app, tools

    found = []

    def walk(script: str, cmd: click.Command, path: tuple[str, ...]) -> None:
        flags = {o for p in cmd.params if getattr(p, "is_flag", False) for o in p.opts
                 if o.startswith("--")} - TYPERS_OWN
        found.append((script, path, flags))
        for name, sub in getattr(cmd, "commands", {}).items():   # a group (Typer 0.29 vendors click)
            walk(script, sub, path + (name,))

    walk("focus-data", typer.main.get_command(data_app), ())
    walk("focus-train", typer.main.get_command(train_app), ())
    for name, sub in typer.main.get_command(tools).commands.items():
        walk("focus-train", sub, (name,))
    walk("focus-eval", typer.main.get_command(eval_app), ())
    return found


COMMANDS = _commands()


def test_every_command_was_found():
    paths = {(s, p) for s, p, _ in COMMANDS}
    assert {("focus-data", ("convert", "mpii")), ("focus-data", ("describe",)), ("focus-data", ("demo",)),
            ("focus-train", ()), ("focus-train", ("prepare",)), ("focus-eval", ())} <= paths
    flags = {f for _, _, fs in COMMANDS for f in fs}
    assert {"--force", "--check", "--version", "--quick", "--with-images", "--list-tasks"} <= flags


@pytest.mark.parametrize("script, path, flags", COMMANDS, ids=[" ".join((s,) + p) for s, p, _ in COMMANDS])
def test_no_bool_metavar_after_our_flags(script, path, flags):
    env = {**os.environ, "COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    done = subprocess.run([console_script(script), *path, "--help"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    shown = {}
    for line in done.stdout.splitlines():
        m = re.match(r"[│|]?\s+(--[\w-]+)\s+(?:-\w+\s+)?(<bool>)?", line)   # the option column only
        if m and m.group(1) in flags | TYPERS_OWN:
            shown[m.group(1)] = bool(m.group(2))
    assert set(shown) >= flags, (flags - set(shown), done.stdout)
    assert not [f for f in flags if shown[f]], done.stdout
