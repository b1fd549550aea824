"""A loopback HTTP server that speaks the parts of HTTP downloads use (Range → 206, If-Range, 416,
dropped connections), and packers that turn a dataset folder written by tests/eval/fixtures.py into
archives named and laid out as the real releases are."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from focusclip.pipeline.download.spec import Count, Dataset, Part


class Served:
    """What the server holds and what it saw. Keys are a URL's path plus its query."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.content_type: dict[str, str] = {}
        self.drop_once: dict[str, int] = {}       # key → bytes of the body sent before the connection drops
        self.ignore_range: set[str] = set()       # keys answered 200 in full whatever Range says
        self.log: list[dict] = []                  # {"key", "range", "if_range", "status"}
        self.url = ""

    def add(self, url_or_key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        key = url_key(url_or_key)
        self.files[key] = body
        self.content_type[key] = content_type
        return key

    def hits(self, key: str) -> list[dict]:
        return [r for r in self.log if r["key"] == url_key(key)]


def url_key(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def etag(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:16] + '"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:   # quiet test output
        pass

    def do_GET(self) -> None:
        served: Served = self.server.served
        key, rng, if_range = self.path, self.headers.get("Range"), self.headers.get("If-Range")
        entry = {"key": key, "range": rng, "if_range": if_range}
        served.log.append(entry)
        body = served.files.get(key)
        if body is None:
            return self._send(entry, 404, b"not found", "text/plain")
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and key not in served.ignore_range and (if_range is None or if_range == etag(body)):
            start = int(m[1])
            if start >= len(body):
                return self._send(entry, 416, b"", "text/plain", {"Content-Range": f"bytes */{len(body)}"})
        headers = {"ETag": etag(body), "Accept-Ranges": "bytes"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        self._send(entry, 206 if start else 200, body[start:], served.content_type[key], headers,
                   drop_after=served.drop_once.pop(key, None))

    def _send(self, entry, status, payload, ctype, headers=None, drop_after=None) -> None:
        entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if drop_after is None:
            self.wfile.write(payload)
            return
        self.wfile.write(payload[:drop_after])   # then the connection drops, as a flaky link does
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 in a thread; `server.url` is its base URL (a --mirror)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.served = Served()
    httpd.served.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd.served
    httpd.shutdown()
    httpd.server_close()


# ----------------------------------------------------------------------------------- archives
def zip_of(folder: Path, prefix: str = "", base: Path | None = None) -> bytes:
    """A zip of every file under `folder`, member names relative to `base` (default `folder`),
    under `prefix`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(base or folder).as_posix())
    return buf.getvalue()


def targz_of(folder: Path, prefix: str = "", base: Path | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                tf.add(p, prefix + p.relative_to(base or folder).as_posix(), recursive=False)
    return buf.getvalue()


def tar_with(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """A tar.gz of (name, data) files and hand-made TarInfo entries (links, devices)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def zip_with(members: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of (name, data, unix mode) members, stored uncompressed (so bytes can be flipped)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


# ----------------------------------------------------------------------------------- catalogs
def retarget(ds: Dataset, counts: dict[str, int] | None = None, checksums: dict[str, str] | None = None,
             **part_fields) -> Dataset:
    """The same entry with some expected counts (by pattern), checksums (by path) and part fields
    (e.g. sha256) replaced: what a tiny fixture holds instead of the real release."""
    counts, checksums = counts or {}, checksums or {}

    def fix(cs: tuple[Count, ...]) -> tuple[Count, ...]:
        return tuple(dataclasses.replace(c, expected=counts.get(c.pattern, c.expected)) for c in cs)

    def layout(lay):
        sums = tuple((path, checksums.get(path, digest)) for path, digest in lay.checksums)
        return dataclasses.replace(lay, counts=fix(lay.counts), checksums=sums)

    parts = tuple(dataclasses.replace(p, **part_fields, layouts=tuple(map(layout, p.layouts))) for p in ds.parts)
    return dataclasses.replace(ds, parts=parts, counts=fix(ds.counts))


def part_url(ds: Dataset, name: str) -> str:
    part: Part = next(p for p in ds.parts if p.name == name)
    assert part.url, f"{name} has no URL"
    return part.url
