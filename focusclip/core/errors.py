"""The project's user-error class and the one place that turns errors into a one-line message.

`run_cli` wraps every console script: a user error (FocusError, and the ordinary OS and file-format
errors a user causes: a path that cannot be written, a file that is not UTF-8 or not in its format)
is one line `error: <where>: <what> (<fix>)` on stderr and exit 1. Anything else is a bug: its
traceback, then a line asking for a report, and exit 1. Both show control characters escaped
(`printable`): a path, a file or a server's reply quoted in them cannot drive the terminal.
"""
from __future__ import annotations

import contextlib
import errno
import re
import sys
import traceback
from typing import Callable, Iterator

# Where bugs are reported; the line printed after an unexpected traceback says it.
REPORT_BUGS = "please report it, with the command and the traceback above, on the focusclip issue tracker"


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


# C0 controls, DEL and C1 controls: a terminal acts on them (ESC starts a sequence that can retitle,
# recolour or clear it; CR and BS overwrite what was printed), so text from a file, a server or a
# path is shown with them escaped.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with each control character written as its Python escape (`\\x1b`, `\\n`, `\\t`):
    it prints as the characters it holds, on one line, and the terminal acts on none of them."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


# errno → (what, fix) for the OS errors a user's paths cause; anything else with an errno says strerror.
_OS_ERRORS = {
    errno.EACCES: ("permission denied", "choose a path you may write (and read), or change its permissions"),
    errno.EPERM: ("operation not permitted", "choose another path, or change its permissions"),
    errno.EROFS: ("read-only file system", "choose an output on a writable disk"),
    errno.EEXIST: ("already exists and is not a folder", "remove it or choose another path"),
    errno.EISDIR: ("is a folder, not a file", "pass a file path"),
    errno.ENOTDIR: ("a part of this path is a file, not a folder", "pass a path whose parents are folders"),
    errno.ENOENT: ("not found", "check the path"),
    errno.ENOSPC: ("no space left on the device", "free some space or choose an output on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose an output on another disk"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or use fewer workers"),
}


def os_error_parts(e: OSError) -> tuple[str, str]:
    """(what, fix) of an OSError, without its path."""
    return _OS_ERRORS.get(e.errno, (e.strerror or str(e), "check the path and the disk"))


def os_error_message(e: OSError) -> str:
    """An OSError as `<path>: <what> (<fix>)`."""
    what, fix = os_error_parts(e)
    where = e.filename if e.filename is not None else None
    if e.filename2 is not None:
        where = f"{e.filename} → {e.filename2}"
    return str(fail(what, str(where) if where is not None else None, fix))


def brief(e: BaseException, limit: int = 160) -> str:
    """`Type: message` on one line, cut to `limit` characters (for 'cannot read X (…)')."""
    text = " ".join(str(e).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def one_line(text: str) -> str:
    """`text` as one printable line: runs of whitespace (newlines, tabs, CR included) made one space,
    every other control character escaped."""
    return printable(" ".join(text.split()))


def user_message(e: BaseException) -> str | None:
    """The one-line message for an error a user causes, or None when it is a bug. Paths, file
    contents and server replies in it are shown with their control characters escaped."""
    if isinstance(e, FocusError):
        return one_line(str(e))
    if isinstance(e, OSError) and e.errno is not None:
        return one_line(os_error_message(e))
    if isinstance(e, UnicodeDecodeError):
        return (f"a file is not UTF-8 text ({e.reason} at byte {e.start}) "
                "(save it as UTF-8; the error names no file, so check the inputs of this command)")
    return None


@contextlib.contextmanager
def reading(path, what: str, fix: str, errors: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Around the parsing of one file or folder the user gave: a failure to read or parse it (wrong
    format, truncated, not UTF-8, damaged) becomes one user error naming it; FocusError passes.

    Keep the block to the library calls that parse the input, so a bug in our own code still shows
    as one. `errors` adds a library's own error classes (e.g. safetensors' SafetensorError)."""
    import pickle

    try:
        yield
    except FocusError:
        raise
    except (OSError, ValueError, KeyError, EOFError, RuntimeError, UnicodeError, pickle.UnpicklingError,
            *errors) as e:
        raise fail(f"cannot read {what} ({brief(e)})", str(path), fix) from None


def run_cli(app: Callable[[], object]) -> None:
    """Run a console script's app; user errors become one line on stderr and exit status 1."""
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # SystemExit (typer's own exit) passes through untouched
        message = user_message(e)
        if message is None:   # the traceback's messages may quote a file or a server: escaped too
            print("\n".join(printable(line) for line in traceback.format_exc().splitlines()), file=sys.stderr)
            message = f"unexpected {type(e).__name__}: this is a bug in focusclip; {REPORT_BUGS}"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
