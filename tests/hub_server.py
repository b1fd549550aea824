"""A loopback Hugging Face hub for tests: a real `http.server` on 127.0.0.1 in a thread that serves
folders as model repos the way `huggingface_hub` downloads them. Point a process at it with
`HF_ENDPOINT=server.url` (and a fresh `HF_HOME`), and `from_pretrained("org/name")`,
`hf_hub_download` and `snapshot_download` run their real code paths against it.

What the client asks for, and what it reads back (huggingface_hub 1.x–2.x, `file_download.py`,
`hf_api.py`, `utils/_http.py`):
  HEAD /{repo}/resolve/{revision}/{path}       headers X-Repo-Commit, ETag, Content-Length
  GET  /{repo}/resolve/{revision}/{path}       the bytes (Range is honoured for resumed downloads)
  GET  /api/models/{repo}[/revision/{rev}]     JSON with `sha` and `siblings` (snapshot_download,
                                               model_info)
  GET  /api/models/{repo}/tree/{rev}[/{path}]  JSON list of {type, path, size, oid}
Errors carry `X-Error-Code` (RepoNotFound with 401 as the hub answers unknown or private repos,
GatedRepo for a gated repo asked without its token, RevisionNotFound, EntryNotFound with
X-Repo-Commit so the client caches the absence), which `hf_raise_for_status` turns into its typed
exceptions.

Every request is recorded in `requests` (method, path), so a test can assert that a run made none.
Routes are a list of (method, regex, handler): add one with `route(...)` (upload endpoints, say).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"


@dataclass(frozen=True)
class Snapshot:
    """One revision of a repo: its commit id, the folder holding its files, and for a gated repo the
    token a request must carry (`Authorization: Bearer <token>`)."""
    commit: str
    folder: Path
    token: str | None = None

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())


def _commit_of(folder: Path) -> str:
    """A 40-hex commit id from the contents, so the same files always get the same commit."""
    h = hashlib.sha1()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


class Reply:
    """What a handler answers: status, headers and a body (bytes or a JSON-able value)."""

    def __init__(self, status: int = 200, body: bytes | object = b"", headers: dict | None = None):
        self.status, self.headers = status, dict(headers or {})
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            self.headers.setdefault("Content-Type", "application/json")
        self.body = body


class HubServer:
    def __init__(self):
        self.repos: dict[str, dict[str, Snapshot]] = {}     # repo id → revision name or commit → snapshot
        self.requests: list[tuple[str, str]] = []
        self.routes: list[tuple[str, re.Pattern, Callable[..., Reply]]] = []
        self.route("HEAD", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._resolve)
        self.route("GET", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._resolve)
        self.route("GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", self._tree)
        self.route("GET", rf"/api/models/{REPO}/revision/(?P<rev>[^/]+)", self._info)
        self.route("GET", rf"/api/models/{REPO}", self._info)
        self._httpd: ThreadingHTTPServer | None = None
        self._url: str | None = None
        self._lock = threading.Lock()

    # -- set-up ------------------------------------------------------------------------------------
    def serve(self, repo_id: str, folder: Path, revision: str = "main", token: str | None = None) -> str:
        """Serve `folder` as `repo_id` at `revision` (a branch or tag name); returns its commit.
        With `token`, the repo is gated: requests without that bearer token are refused."""
        snap = Snapshot(_commit_of(Path(folder)), Path(folder), token)
        revs = self.repos.setdefault(repo_id, {})
        revs[revision] = revs[snap.commit] = snap
        return snap.commit

    def route(self, method: str, pattern: str, handler: Callable[..., Reply]) -> None:
        """`handler(request, **groups) -> Reply`; `request` has .method, .path, .query, .headers, .body."""
        self.routes.append((method, re.compile(pattern + r"$"), handler))

    def start(self) -> "HubServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                server._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args):   # quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        """The endpoint (kept after `stop()`, so a test can point a client at the closed port)."""
        assert self._url is not None, "start() the server first"
        return self._url

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- dispatch ----------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        h.body = h.rfile.read(length) if length else b""
        h.query = parts.query
        with self._lock:
            self.requests.append((h.command, parts.path))
        reply = Reply(404, {"error": "no such route"})
        for method, pattern, handler in self.routes:
            m = pattern.match(parts.path)
            if m and method == h.command:
                reply = handler(h, **{k: unquote(v) if v else v for k, v in m.groupdict().items()})
                break
        h.send_response(reply.status)
        reply.headers.setdefault("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(reply.body)

    def _snapshot(self, h, repo: str, rev: str) -> Snapshot | Reply:
        if repo not in self.repos:   # the hub answers 401 for unknown (or private) repos
            return Reply(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        snap = self.repos[repo].get(rev)
        if snap is None:
            return Reply(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
        if snap.token is not None and h.headers.get("Authorization") != f"Bearer {snap.token}":
            return Reply(401, {"error": "Access to this model is restricted"}, {"X-Error-Code": "GatedRepo"})
        return snap

    # -- handlers ----------------------------------------------------------------------------------
    def _resolve(self, h, repo: str, rev: str, path: str) -> Reply:
        snap = self._snapshot(h, repo, rev)
        if isinstance(snap, Reply):
            return snap
        f = snap.folder / path
        if not f.is_file():
            return Reply(404, {"error": "Entry not found"},
                         {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": snap.commit})
        data = f.read_bytes()
        headers = {"X-Repo-Commit": snap.commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes", "Content-Length": str(len(data))}
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range") or "")
        if h.command == "GET" and rng:
            start, end = int(rng.group(1)), int(rng.group(2) or len(data) - 1)
            part = data[start:end + 1]
            headers.update({"Content-Range": f"bytes {start}-{start + len(part) - 1}/{len(data)}",
                            "Content-Length": str(len(part))})
            return Reply(206, part, headers)
        return Reply(200, data if h.command == "GET" else b"", headers)

    def _info(self, h, repo: str, rev: str = "main") -> Reply:
        snap = self._snapshot(h, repo, rev)
        if isinstance(snap, Reply):
            return snap
        return Reply(200, {"_id": repo, "id": repo, "modelId": repo, "sha": snap.commit, "private": False,
                           "gated": False, "disabled": False, "tags": [],
                           "siblings": [{"rfilename": f} for f in snap.files()]})

    def _tree(self, h, repo: str, rev: str, path: str | None = None) -> Reply:
        snap = self._snapshot(h, repo, rev)
        if isinstance(snap, Reply):
            return snap
        prefix = (path or "").strip("/")
        rows = [{"type": "file", "path": f, "size": (snap.folder / f).stat().st_size,
                 "oid": hashlib.sha1((snap.folder / f).read_bytes()).hexdigest()}
                for f in snap.files() if not prefix or f.startswith(prefix + "/")]
        return Reply(200, rows)
