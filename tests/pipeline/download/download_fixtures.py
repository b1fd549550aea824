"""A loopback HTTP server that speaks the parts of HTTP downloads use (Range → 206, If-Range, 416,
dropped connections) and misbehaves on request (trickled bodies and heads, redirects), on 127.0.0.1,
127.0.0.2 (another host as far as the client can tell) or with TLS; packers that turn a dataset folder
written by tests/eval/fixtures.py into archives named and laid out as the real releases are; and the
environment that lowers the download limits in a console script run."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import socket
import ssl
import subprocess
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
        self.trickle_once: dict[str, tuple[int, float]] = {}  # key → (bytes sent at once, then seconds per byte)
        self.slow_head: dict[str, float] = {}     # key → seconds per byte of the status line and headers
        self.redirects: dict[str, str] = {}       # key → Location of a 302
        self.stop = threading.Event()             # set at teardown: trickling handlers return
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
        if key in served.redirects:
            return self._send(entry, 302, b"", "text/plain", {"Location": served.redirects[key]})
        if key in served.slow_head:
            return self._trickle_head(entry, served.slow_head[key])
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
                   drop_after=served.drop_once.pop(key, None), trickle=served.trickle_once.pop(key, None))

    def _send(self, entry, status, payload, ctype, headers=None, drop_after=None, trickle=None) -> None:
        entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if trickle is not None:
            return self._trickle(payload[:trickle[0]], payload[trickle[0]:], trickle[1])
        if drop_after is None:
            self.wfile.write(payload)
            return
        self.wfile.write(payload[:drop_after])   # then the connection drops, as a flaky link does
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _trickle(self, at_once: bytes, rest: bytes, seconds_per_byte: float) -> None:
        """`at_once`, then `rest` one byte at a time, until the client hangs up or the test ends."""
        stop = self.server.served.stop
        try:
            self.wfile.write(at_once)
            self.wfile.flush()
            for i in range(len(rest)):
                if stop.wait(seconds_per_byte):
                    return
                self.wfile.write(rest[i:i + 1])
                self.wfile.flush()
        except OSError:           # the client gave up: what the tests want
            pass
        self.close_connection = True

    def _trickle_head(self, entry, seconds_per_byte: float) -> None:
        entry["status"] = 200
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n"
        self._trickle(b"", head + b"body", seconds_per_byte)


def _serve(host: str, context: ssl.SSLContext | None = None):
    httpd = ThreadingHTTPServer((host, 0), _Handler)
    httpd.daemon_threads = True
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.served = Served()
    httpd.served.url = f"{'https' if context else 'http'}://{host}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd.served
    httpd.served.stop.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 in a thread; `server.url` is its base URL (a --mirror)."""
    yield from _serve("127.0.0.1")


@pytest.fixture
def other_server():
    """The same on 127.0.0.2: another host for redirects (Linux routes all of 127/8 to loopback)."""
    yield from _serve("127.0.0.2")


@pytest.fixture
def tls_cert(tmp_path_factory) -> Path:
    """A self-signed certificate for 127.0.0.1 (key and certificate in one PEM), made with openssl.
    A client trusts it with SSL_CERT_FILE=<it>."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    pem = tmp_path_factory.mktemp("tls") / "loopback.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(pem), "-out", str(pem.with_suffix(".crt"))], check=True, capture_output=True)
    pem.write_bytes(pem.read_bytes() + pem.with_suffix(".crt").read_bytes())
    return pem


@pytest.fixture
def tls_server(tls_cert, monkeypatch):
    """An HTTPS server on 127.0.0.1; this process trusts its certificate (SSL_CERT_FILE)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_cert)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert))
    yield from _serve("127.0.0.1", context)


def lowered_limits(folder: Path, **limits: float) -> dict[str, str]:
    """Environment variables for a console script run with download limits lowered, as monkeypatch
    lowers them in this process: `lowered_limits(tmp, **{"fetch.STALL_WINDOW_S": 1})` writes a
    sitecustomize.py (Python imports it at start) setting focusclip.pipeline.download.fetch.STALL_WINDOW_S."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["import importlib"]
    for name, value in limits.items():
        module, attr = name.rsplit(".", 1)
        lines.append(f"setattr(importlib.import_module('focusclip.pipeline.download.{module}'), {attr!r}, {value!r})")
    (folder / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


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


def zeros_zip(n_bytes: int, name: str = "JPEGImages/zeros.jpg") -> bytes:
    """A zip holding `n_bytes` of zeros, deflated about 1000 to 1, written without holding them all."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(name, "w") as f:
        for _ in range(n_bytes // 2**20):
            f.write(bytes(2**20))
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
