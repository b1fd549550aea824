"""Resumable HTTP downloads with the standard library.

A file is fetched into `NAME.part`; after a dropped connection the next attempt (or the next run)
asks for the rest with `Range: bytes=N-`, guarded by `If-Range` with the first response's ETag or
Last-Modified, so a file that changed on the server is started over instead of spliced. A `200`
answer to a range request (the server ignores ranges) also starts over. The SHA-256 is computed as
the bytes arrive (the kept prefix is read once on resume) and checked when one is recorded. Only a
complete, verified file is renamed to `NAME`.

A stall is an attempt that gets less than MIN_RATE bytes/s on average over a STALL_WINDOW_S window
(no response head within the window, or no byte at all, included): it is retried like a dropped
connection, and when the retries are spent it is one error naming the URL and the bytes kept. Every
piece read is written to the `.part` as it arrives (`read1`), so what came before a stall is kept and
resumed. Redirects stay on the host asked (opener.py).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from focusclip import __version__
from focusclip.core.errors import fail
from focusclip.core.progress import progress
from focusclip.pipeline.download.opener import opener

CHUNK = 1 << 20
# The stall rule: below MIN_RATE bytes/s averaged over STALL_WINDOW_S seconds (1 KiB/s over a minute;
# the datasets' hosts serve megabytes a second). The window is also the socket timeout and the time
# a server has to send its response head.
MIN_RATE = 1024
STALL_WINDOW_S = 60.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


class GotWebPage(Exception):
    """The server answered with an HTML page (a sign-in, quota or virus-scan page), not the file."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    bytes: int
    sha256: str
    resumed_from: int      # bytes kept from an earlier, interrupted attempt or run (0 if none)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def fetch(url: str, dest: Path, *, sha256: str | None = None, retries: int = 3,
          backoff_s: float = 2.0, allow_redirect: tuple[str, ...] = ()) -> Fetched:
    """Download `url` to `dest`, resuming `dest.part` when there is one. Redirects are followed to
    `url`'s host and the hosts in `allow_redirect` only."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    meta_path = part.with_name(part.name + ".json")
    first_offset = part.stat().st_size if part.exists() else 0
    http = opener(url, allow_redirect, STALL_WINDOW_S)
    error: _Retry | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(backoff_s * 2 ** (attempt - 1), 30.0))
        try:
            hasher, total = _attempt(http, url, part, meta_path)
        except _Retry as e:
            error = e
            continue
        if sha256 and hasher.hexdigest() != sha256:
            part.unlink()
            meta_path.unlink(missing_ok=True)
            raise fail(f"SHA-256 {hasher.hexdigest()} differs from the recorded {sha256}", url,
                       "the file is not the release's; it was removed — check the source or --mirror")
        part.replace(dest)
        meta_path.unlink(missing_ok=True)
        return Fetched(dest, total, hasher.hexdigest(), first_offset)
    got = part.stat().st_size if part.exists() else 0
    if isinstance(error, _Stalled):
        raise fail(f"the download stalled after {got:,} bytes ({error}; {retries} retries)", url,
                   f"the partial download is kept in {part}; rerun later to resume it, or use --mirror")
    raise fail(f"download interrupted after {got:,} bytes ({error}) and {retries} retries", url,
               f"the partial download is kept in {part}; rerun the same command to resume")


class _Retry(Exception):
    """A transient failure: the attempt is repeated, resuming from what is on disk."""


class _Stalled(_Retry):
    """The server sent less than MIN_RATE bytes/s over a STALL_WINDOW_S window."""


def _attempt(http: urllib.request.OpenerDirector, url: str, part: Path, meta_path: Path):
    """One request: resume or start over, stream to `part`; returns (sha256 hasher, total bytes)."""
    offset = part.stat().st_size if part.exists() else 0
    meta = _read_meta(meta_path) if offset else {}
    if meta.get("url") != url:
        offset, meta = 0, {}
    try:
        resp = http.open(_request(url, offset, meta), timeout=STALL_WINDOW_S)
    except urllib.error.HTTPError as e:
        return _http_error(e, url, part, meta_path, offset)
    except TimeoutError as e:        # the response head did not come within the window
        raise _Stalled(str(e) or f"no response within {STALL_WINDOW_S:g} s") from None
    except _TRANSIENT as e:
        if isinstance(getattr(e, "reason", None), TimeoutError):
            raise _Stalled(f"no connection within {STALL_WINDOW_S:g} s") from None
        raise _Retry(f"{type(e).__name__}: {e}") from None
    with resp:
        if "text/html" in (resp.headers.get("Content-Type") or ""):
            raise GotWebPage(url)
        offset, total = _resume_point(resp, offset)
        meta = {"url": url, "total": total, "etag": resp.headers.get("ETag"),
                "last_modified": resp.headers.get("Last-Modified")}
        with naming(meta_path):
            meta_path.write_text(json.dumps(meta))
        _check_space(part, (total or 0) - offset)
        hasher = _hash_prefix(part, offset)
        _stream(resp, part, offset, total, hasher)
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"connection closed at {size:,} of {total:,} bytes")
    return hasher, size


def _request(url: str, offset: int, meta: dict) -> urllib.request.Request:
    headers = {"User-Agent": f"focusclip/{__version__} (focus-data download)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    return urllib.request.Request(url, headers=headers)


def _http_error(e: urllib.error.HTTPError, url: str, part: Path, meta_path: Path, offset: int):
    """416 on a complete .part means done; 5xx and 429 are retried; anything else is final."""
    if e.code == 416 and offset:
        m = re.match(r"bytes \*/(\d+)", e.headers.get("Content-Range") or "")
        if m and int(m[1]) == offset:
            return _hash_prefix(part, offset), offset
        part.unlink()
        raise _Retry("the kept partial file is longer than the server's file; starting over")
    if e.code >= 500 or e.code == 429:
        raise _Retry(f"HTTP {e.code} {e.reason}")
    raise fail(f"HTTP {e.code} {e.reason}", url,
               "check the URL or --mirror; if the source has moved, download the file by hand and pass --from")


def _resume_point(resp, offset: int) -> tuple[int, int | None]:
    """Where the body starts and the file's total size (None when the server does not say)."""
    if resp.status == 206:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range") or "")
        if not m or int(m[1]) != offset:
            raise _Retry(f"the server answered a different range ({resp.headers.get('Content-Range')})")
        return offset, None if m[3] == "*" else int(m[3])
    length = resp.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None   # 200: the whole file again


def _stream(resp, part: Path, offset: int, total: int | None, hasher) -> None:
    """Append the body to `part` piece by piece as it arrives (`read1` returns what one read got, so
    nothing received is lost to a stall or a drop); a stall raises _Stalled."""
    bar = progress(total=total, initial=offset, desc=part.name[:-5], unit="B", unit_scale=True,
                   unit_divisor=1024)
    window = _RateWindow()
    try:
        with naming(part), open(part, "r+b" if offset else "wb") as f:
            f.seek(offset)
            f.truncate()
            while True:
                try:
                    chunk = resp.read1(CHUNK)
                except TimeoutError:
                    raise _Stalled(f"nothing arrived in {STALL_WINDOW_S:g} s") from None
                except _TRANSIENT as e:
                    raise _Retry(f"connection lost ({type(e).__name__})") from None
                if not chunk:
                    break
                f.write(chunk)
                hasher.update(chunk)
                bar.update(len(chunk))
                window.add(len(chunk))
    finally:
        bar.close()


class _RateWindow:
    """The stall rule over consecutive windows of STALL_WINDOW_S seconds: a window that closes with
    fewer than MIN_RATE bytes per second of it is a stall."""

    def __init__(self):
        self.start, self.bytes = time.monotonic(), 0

    def add(self, n: int) -> None:
        self.bytes += n
        elapsed = time.monotonic() - self.start
        if elapsed < STALL_WINDOW_S:
            return
        if self.bytes < MIN_RATE * elapsed:
            raise _Stalled(f"{self.bytes:,} bytes in the last {elapsed:.0f} s, under the minimum of "
                           f"{MIN_RATE:,} bytes/s")
        self.start, self.bytes = time.monotonic(), 0


@contextlib.contextmanager
def naming(path: Path):
    """An OSError raised without a path (a write on a full disk) gets `path`, so its message says where."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            e.filename = str(path)
        raise


def _hash_prefix(part: Path, offset: int):
    """A SHA-256 hasher fed with the first `offset` bytes of `part` (the kept prefix on resume)."""
    hasher = hashlib.sha256()
    if offset:
        with open(part, "rb") as f:
            left = offset
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                hasher.update(chunk)
                left -= len(chunk)
    return hasher


def _check_space(part: Path, need: int) -> None:
    free = shutil.disk_usage(part.parent).free
    if need > free:
        raise fail(f"needs {need / 2**30:.1f} GiB free for {part.name[:-5]}, {free / 2**30:.1f} GiB left",
                   str(part.parent), "free some space or pass another --root")


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path) -> str:
    return _hash_prefix(path, path.stat().st_size).hexdigest()
