"""The project's user-error class and the one place that turns it into a one-line message and exit 1."""
from __future__ import annotations

import sys
from typing import Callable


class FocusError(Exception):
    """A user error: bad input, a missing file, a wrong option.

    The message says what went wrong, where, and how to fix it, on one line. Console scripts print it
    as `error: <message>` on stderr and exit 1, never with a traceback.
    """


def fail(what: str, where: str | None = None, fix: str | None = None) -> FocusError:
    """Build a FocusError from its three parts: `raise fail("not a .mat file", path, "pass the .mat")`."""
    msg = f"{where}: {what}" if where else what
    if fix:
        msg += f" ({fix})"
    return FocusError(msg)


def run_cli(app: Callable[[], object]) -> None:
    """Run a console script's app; user errors become one line on stderr and exit status 1."""
    try:
        app()
    except FocusError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
