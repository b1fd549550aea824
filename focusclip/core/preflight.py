"""Checks every stage runs on its output paths before any work (docs/design.md §1.1).

A long job must not find out at the end that it cannot write its result, so each `run_<stage>`
calls `writable_file` or `writable_dir` on its outputs first. They test what the write will need:
that no part of the path is a file where a folder belongs, that the output is not a folder where a
file belongs (or the reverse), and that the nearest existing folder accepts a new file — by creating
and removing one, so a read-only mount, a folder without write permission and a full quota are all
caught, whoever runs the command (root ignores permission bits, not a read-only mount). Nothing is
left behind: folders that do not exist yet are not created here.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from focusclip.core.errors import fail, os_error_parts


def writable_file(path: str | os.PathLike, option: str = "-o", append: bool = False) -> Path:
    """`path` can be written as a file (atomically, by a rename beside it; or appended to when
    `append`). Returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise fail("is a folder, not a file", str(path), f"pass a file path with {option}")
    _nearest_folder_accepts_files(path, option)
    if append and path.exists():
        try:
            with open(path, "ab"):
                pass
        except OSError as e:
            raise fail(f"cannot append to it: {os_error_parts(e)[0]}", str(path),
                       f"choose another {option}, or make the file writable") from None
    return path


def writable_dir(path: str | os.PathLike, option: str = "-o", beside: bool = False) -> Path:
    """`path` can hold the stage's files: a folder (or nothing yet) whose files can be created.
    `beside`: the folder is built next to it and renamed over it, so its parent must accept entries
    too. Returns it as a Path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise fail("exists and is not a folder", str(path), f"pass a folder path with {option}")
    if path.is_dir():
        _probe(path, path, option)
        if beside:
            _probe(path.resolve().parent, path, option)
    else:
        _nearest_folder_accepts_files(path, option)
    return path


def _nearest_folder_accepts_files(path: Path, option: str) -> None:
    """The closest existing ancestor of `path` is a folder that accepts a new file."""
    for parent in path.absolute().parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise fail(f"{parent} is a file, not a folder", str(path),
                           f"choose an {option} path whose parent folders are folders")
            _probe(parent, path, option)
            return


def _probe(folder: Path, path: Path, option: str) -> None:
    """Create and remove a file in `folder`: the only test that answers for every kind of refusal."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".focusclip-write-test-", dir=folder)
    except OSError as e:
        where = f"{path}" if folder == path else f"{path} (in {folder})"
        raise fail(f"cannot write here: {os_error_parts(e)[0]}", where,
                   f"choose another {option}, or make {folder} writable") from None
    os.close(fd)
    os.unlink(tmp)
