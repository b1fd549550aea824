"""One writer per output: an advisory lock file beside each output (docs/design.md §1.1).

`with output_lock(path, "-o"):` takes `<path>.lock` with `flock` (exclusive, non-blocking) for the
whole run. A second process on the same output stops at once with one line naming who holds it
(pid, host, command, since when), read from the lock file, which the holder writes after locking.
The kernel drops the lock when its holder exits, however it exits (SIGKILL included), so a lock is
never stale: the file a dead holder leaves is reused by the next run, and removed by a clean exit.

Removing the file on release races with a process that opened it just before: that one could lock
the unlinked file while a third locks a new one. So a lock counts only while the path still names
the locked file (same inode); otherwise it is taken again. `flock` works across processes of one
machine and over NFS on Linux (emulated with fcntl locks); it is advisory, so only our commands keep it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from focusclip.core.errors import fail


def lock_path(output: str | os.PathLike) -> Path:
    """`X.jsonl.lock` beside a file, `DIR.lock` beside a folder (not inside it: a folder may be built
    as `DIR.incomplete` and renamed)."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


def _holder(path: Path) -> str:
    """Who holds the lock, from what the holder wrote; the file is a stranger's, so it is parsed
    defensively and printed with repr (no raw control characters reach the terminal)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8")[:4096])
        return (f"pid {int(info['pid'])} on {str(info['host'])!r} since {str(info['since'])!r} "
                f"({str(info['command'])[:200]!r})")
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "another process"


def _acquire(path: Path, output: str, option: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise fail(f"is being written by {_holder(path)}", output,
                       f"wait for that run to finish or stop it: one process per {option} output") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)   # the holder before us removed the file after we opened it: take the new one


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns those created, deepest first."""
    made = []
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    for f in reversed(made):
        f.mkdir(exist_ok=True)
    return made


@contextlib.contextmanager
def output_lock(output: str | os.PathLike, option: str = "-o") -> Iterator[Path]:
    """Hold `<output>.lock` for the block; FocusError at once when another process holds it. Folders
    created for the lock file are removed again when the block leaves them empty (a refused run
    leaves nothing behind)."""
    path = lock_path(output)
    made = _make_parents(path.parent)
    try:
        fd = _acquire(path, str(output), option)
    except BaseException:
        _remove_empty(made)
        raise
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)[:1000]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)   # still ours: nobody else can lock it while we hold it
        os.close(fd)
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:   # deepest first; a folder the run filled stays
        try:
            f.rmdir()
        except OSError:
            break
