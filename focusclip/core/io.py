"""File helpers every stage uses: atomic writes, JSONL that survives a crash (reports: core.report)."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Iterator

from focusclip.core.errors import fail


def _create_temp(folder: Path, name: str) -> Path:
    """Create an empty, uniquely named `.<name>.<random>.tmp` in `folder` with mode 0666 less the
    umask, as an ordinary `open(path, "w")` would. (`tempfile.mkstemp` makes it 0600, so the renamed
    file could not be read by the group of a shared folder.)"""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name} in {folder}")


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """An OSError raised without a file name (a write's ENOSPC or EIO) gets `path`, so the one-line
    error says where the disk filled up."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise type(e)(e.errno, e.strerror, os.fspath(path)) from e
        raise


def give_umask_mode(paths: Iterable[str | os.PathLike]) -> None:
    """Give files a library made with a private mode (safetensors 0.8 writes 0600) the mode an
    ordinary write gets here: 0666 less the umask, read off a probe file (os.umask() cannot be read
    without setting it, which would race with other threads)."""
    paths = [Path(p) for p in paths]
    if not paths:
        return
    probe = _create_temp(paths[0].parent, "umask-probe")
    try:
        mode = probe.stat().st_mode & 0o777
    finally:
        probe.unlink()
    for p in paths:
        if p.is_file() and not p.is_symlink() and (p.stat().st_mode & 0o777) != mode:
            os.chmod(p, mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.
    The file gets the permissions of an ordinary write (the umask is honoured)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path.parent, path.name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with naming(path), atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with naming(path), atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write all rows atomically; returns the row count."""
    n = 0
    with naming(path), atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            n += 1
    return n


TOO_DEEP = "nested too deeply to be a record (a damaged or hostile file)"


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise fail("file not found", str(path), "check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise fail(f"not valid JSON ({e})", str(path), "pass a JSON file") from None
    except RecursionError:
        raise fail(TOO_DEEP, str(path), "pass a JSON file of records") from None


def read_jsonl(path: str | os.PathLike, *, allow_torn_tail: bool = True) -> list[dict]:
    """Read a JSONL file (UTF-8, as JSON must be). A torn last line (a crash mid-write) is dropped
    when `allow_torn_tail`; a bad line anywhere else is a user error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise fail("file not found", str(path), "check the path")
    data = path.read_bytes()
    lines = data.split(b"\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    torn = allow_torn_tail and not data.endswith(b"\n")
    rows: list[dict] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8-sig" if i == 0 else "utf-8"))   # a BOM from Windows editors
        except UnicodeDecodeError as e:
            if i == last and torn:
                break
            raise fail(f"line {i + 1} is not UTF-8 text (byte {e.start})", str(path),
                       "save the file as UTF-8") from None
        except json.JSONDecodeError:
            if i == last and torn:
                break
            raise fail(f"line {i + 1} is not valid JSON", str(path), "fix or remove that line") from None
        except RecursionError:   # json recurses once per nesting level: a hostile line of [[[[…
            raise fail(f"line {i + 1}: {TOO_DEEP}", str(path), "fix or remove that line") from None
        if not isinstance(row, dict):
            raise fail(f"line {i + 1} is not a JSON object", str(path), "each line must be one record")
        rows.append(row)
    return rows


def repair_jsonl_tail(path: str | os.PathLike) -> bool:
    """Cut a torn (unterminated or unparsable) last line so appends continue on a clean file.
    Returns True when something was cut."""
    path = Path(path)
    if not path.exists():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(cut)
    return True


class JsonlAppender:
    """Append-only JSONL writer that flushes (and fsyncs) every row, after repairing a torn tail.

    The file is opened at the first row, so a run that writes nothing (a dead server, nothing to
    do) leaves no empty file behind."""

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.path = Path(path)
        self.repaired = repair_jsonl_tail(self.path)
        self._f = None
        self._fsync = fsync

    def write(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False, default=_json_default) + "\n"
        with naming(self.path):
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.path, "a", encoding="utf-8")
            self._f.write(line)
            self._f.flush()
            if self._fsync:
                os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json_default(o: Any) -> Any:
    """numpy scalars and arrays, paths and dataclasses into plain JSON."""
    import dataclasses

    if hasattr(o, "item") and getattr(o, "shape", None) == ():
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
