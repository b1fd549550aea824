"""A loopback Hugging Face hub for tests: a real `http.server` on 127.0.0.1 in a thread, holding model and
dataset repos in memory. Repos come from folders (`serve(repo_id, folder, revision, token)`, which returns
the commit: derived from the files, so the same folder gets the same one) or from pushes (huggingface_hub's
write protocol, checked against the server's token). Point a process at it with `HF_ENDPOINT=server.url`
(and a fresh `HF_HOME`), and `from_pretrained`, `hf_hub_download`, `snapshot_download`, `create_commit` and
`load_dataset(ID)` run their real code paths. Pushes need `HF_HUB_DISABLE_XET=1`: uploads then take the
LFS route, which this server speaks (hf_xet's CAS protocol it does not).

A repo (`HubRepo`, `hub.repo(id, kind)`) has a kind (model or dataset), privacy (private reads need the
server's token), an optional gating token (reads need it), revisions by branch or tag name and by commit
id, each with its files and LFS paths (served: by suffix, as .gitattributes would; pushed: as committed),
and the log of pushed commits. `repo.files`, `.lfs`, `.sha` are main's.

What the client asks for, and what it reads back (huggingface_hub 1.x–2.x, `file_download.py`,
`hf_api.py`, `_commit_api.py`, `lfs.py`, `utils/_http.py`); KIND is `models` or `datasets`, and
`[datasets/]` is there for a dataset repo:
  HEAD/GET /[datasets/]{repo}/resolve/{rev}/{path}
                                                the bytes (Range honoured: 206 for resumed downloads);
                                                X-Repo-Commit, ETag (git blob oid), Content-Length, and
                                                for LFS files X-Linked-Etag (sha256) + X-Linked-Size
  GET  /api/KIND/{repo}[/revision/{rev}]        info: `sha`, `private`, `gated`, `siblings`
                                                [{rfilename, size}] (snapshot_download, model_info)
  GET  /api/KIND/{repo}/tree/{rev}[/{path}]     [{type: file|directory, path, size, oid[, lfs]}]: one
                                                level, or everything below with ?recursive=true
  POST /api/KIND/{repo}/paths-info/{rev}        the same entries for the `paths` asked (form or JSON)
  POST /api/repos/create                        {name, organization, type, private|visibility} → {url};
                                                409 if it exists (create_repo(exist_ok=True): done)
  POST /api/validate-yaml                       the card's YAML header → {errors, warnings}
  GET  /api/whoami-v2                           the token's user
  POST /api/KIND/{repo}/preupload/{rev}         per file: uploadMode `lfs` (by suffix) or `regular`
  POST /[datasets/]{repo}.git/info/lfs/objects/batch
                                                upload actions (href: PUT /lfs-upload/{sha256}) for the
                                                objects the server does not hold yet
  POST /api/KIND/{repo}/commit/{rev}            NDJSON: header, file (base64), lfsFile (oid),
                                                deletedFile/deletedFolder → {commitUrl, commitOid}
Errors carry `X-Error-Code`, which `hf_raise_for_status` turns into its typed exceptions: RepoNotFound
with 401 as the hub answers unknown or private repos, GatedRepo for a gated repo asked without its
token, RevisionNotFound, EntryNotFound with X-Repo-Commit (so the client caches the absence), and
Unauthorized for a write without the server's token.

Every request is recorded in `requests` as `Request(method, path, token)`: the path without the query
and the bearer token it carried (or None), so a test can assert that a run asked nothing, or that every
write carried the token. Routes are a table of (method, regex, handler): add one with `route()`.
`stop()` keeps `url`, so a test can point a client at the closed port.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".parquet", ".bin", ".pt", ".png", ".jpg")   # as the hub's .gitattributes
REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
API = rf"/api/(?P<kind>models|datasets)/{REPO}"
PRE = r"/(?:(?P<kind>datasets)/)?"
REV = r"(?P<rev>[^/]+)"


class Request(NamedTuple):
    method: str
    path: str
    token: str | None


@dataclass(frozen=True)
class Revision:
    commit: str
    files: dict[str, bytes]
    lfs: frozenset[str] = frozenset()


@dataclass
class HubRepo:
    """A repo: its kind (`model` or `dataset`), privacy, the token a gated repo's reads need, its
    revisions by branch or tag name and by commit id, and the log of pushed commits."""
    repo_id: str
    kind: str = "model"
    private: bool = False
    token: str | None = None
    revisions: dict[str, Revision] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)

    def add(self, name: str, files: dict[str, bytes], lfs: set[str] | None = None) -> Revision:
        """A new commit holding `files` on top of `name` (LFS paths by suffix unless given)."""
        lfs = {p for p in files if p.endswith(LFS_SUFFIXES)} if lfs is None else lfs
        parent = self.revisions[name].commit if name in self.revisions else ""
        rev = Revision(_commit_id(files, parent), files, frozenset(lfs))
        self.revisions[name] = self.revisions[rev.commit] = rev
        return rev

    main = property(lambda self: self.revisions["main"])
    sha = property(lambda self: self.main.commit)
    files = property(lambda self: self.main.files)
    lfs = property(lambda self: self.main.lfs)


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _commit_id(files: dict[str, bytes], parent: str = "") -> str:
    """A 40-hex commit id from the parent commit and the files (the same folder served anew: the same id)."""
    h = hashlib.sha1(parent.encode())
    for p in sorted(files):
        h.update(p.encode() + b"\0" + hashlib.sha256(files[p]).digest())
    return h.hexdigest()


def _entry(rev: Revision, path: str) -> dict:
    if path not in rev.files:
        return {"type": "directory", "path": path, "oid": _git_oid(path.encode()), "size": 0}
    data = rev.files[path]
    e = {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data)}
    if path in rev.lfs:
        e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return e


class Reply:
    """What a handler answers: status, headers and a body (bytes or a JSON-able value)."""

    def __init__(self, status: int = 200, body: bytes | object = b"", headers: dict | None = None):
        self.status, self.headers = status, dict(headers or {})
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            self.headers.setdefault("Content-Type", "application/json")
        self.body = body


def _error(status: int, code: str, message: str, **headers) -> Reply:
    return Reply(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message, **headers})


class Refused(Exception):
    """`raise Refused(reply)` in a handler answers `reply` instead."""


UNAUTHORIZED = (401, "Unauthorized", "Invalid credentials in Authorization header")


class HubServer:
    """`with HubServer(token) as hub:` — `hub.url`, `hub.serve(...)`, `hub.repo(id, kind)`, `hub.requests`.
    Writes need `Authorization: Bearer <token>`; without a token the server takes none."""

    def __init__(self, token: str | None = None, user: str = "someone"):
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], HubRepo] = {}    # (kind, repo id) → repo
        self.objects: dict[str, bytes] = {}                  # LFS uploads by sha256
        self.requests: list[Request] = []
        self.routes: list[tuple[str, re.Pattern, Callable[..., Reply]]] = []
        for method, pattern, handler in [
            *((m, rf"{PRE}{REPO}/resolve/{REV}/(?P<path>.+)", self._resolve) for m in ("HEAD", "GET")),
            ("GET", rf"{API}/tree/{REV}(?:/(?P<path>.*))?", self._tree),
            ("POST", rf"{API}/paths-info/{REV}", self._paths_info),
            ("GET", rf"{API}(?:/revision/{REV})?", self._info),
            ("POST", r"/api/repos/create", self._create),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("GET", r"/api/whoami-v2", self._whoami),
            ("POST", rf"{API}/preupload/{REV}", self._preupload),
            ("POST", rf"{PRE}{REPO}\.git/info/lfs/objects/batch", self._lfs_batch),
            ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self._lfs_upload),
            ("POST", rf"{API}/commit/{REV}", self._commit)]:
            self.route(method, pattern, handler)
        self._httpd: ThreadingHTTPServer | None = None
        self._url: str | None = None
        self._lock = threading.Lock()

    # -- set-up ------------------------------------------------------------------------------------
    def serve(self, repo_id: str, folder: Path, revision: str = "main", token: str | None = None,
              kind: str = "model") -> str:
        """Serve `folder`'s files as `repo_id` at `revision` (a branch or tag name); returns its commit.
        With `token`, the repo is gated: reads without that bearer token are refused."""
        repo = self.repos.setdefault((kind, repo_id), HubRepo(repo_id, kind))
        repo.token = token or repo.token
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
        return repo.add(revision, files).commit

    def repo(self, repo_id: str, kind: str = "model") -> HubRepo:
        return self.repos[(kind, repo_id)]

    def route(self, method: str, pattern: str, handler: Callable[..., Reply]) -> None:
        """`handler(request, **groups) -> Reply`; `request` has .command, .path, .query, .headers, .body."""
        self.routes.append((method, re.compile(pattern + r"$"), handler))

    def start(self) -> "HubServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = lambda self: server._handle(self)
            log_message = lambda self, *args: None   # quiet

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
        h.body, h.query = (h.rfile.read(length) if length else b""), parse_qs(parts.query)
        bearer = h.headers.get("Authorization", "")
        h.token = bearer[len("Bearer "):] if bearer.startswith("Bearer ") else None
        with self._lock:
            self.requests.append(Request(h.command, parts.path, h.token))
            reply = self._reply(h, parts.path)
        h.send_response(reply.status)
        reply.headers.setdefault("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(reply.body)

    def _reply(self, h, path: str) -> Reply:
        for method, pattern, handler in self.routes:
            if method == h.command and (m := pattern.match(path)):
                try:
                    return handler(h, **{k: unquote(v) if v else v for k, v in m.groupdict().items()})
                except Refused as refused:
                    return refused.args[0]
        return _error(404, "EntryNotFound", f"no route {h.command} {path}")

    def _writer(self, h) -> bool:
        return self.token is not None and h.token == self.token

    def _need_writer(self, h) -> None:
        if not self._writer(h):
            raise Refused(_error(*UNAUTHORIZED))

    def _find(self, h, kind: str | None, repo: str, write: bool = False) -> HubRepo:
        """The repo, or `Refused`: writes need the server's token, private reads too, gated reads the
        repo's (or the server's)."""
        if write:
            self._need_writer(h)
        found = self.repos.get(("dataset" if kind == "datasets" else "model", repo))
        if found is None or (found.private and not self._writer(h)):
            raise Refused(_error(401, "RepoNotFound", f"Repository {repo} not found"))
        if found.token is not None and h.token != found.token and not self._writer(h):
            raise Refused(_error(401, "GatedRepo", f"Access to {repo} is restricted"))
        return found

    def _read(self, h, kind, repo: str, rev: str | None) -> tuple[HubRepo, Revision]:
        found, rev = self._find(h, kind, repo), rev or "main"
        if rev not in found.revisions:
            raise Refused(_error(404, "RevisionNotFound", f"Invalid rev id: {rev}"))
        return found, found.revisions[rev]

    def _url_of(self, repo: HubRepo) -> str:
        return f"{self.url}/{'datasets/' if repo.kind == 'dataset' else ''}{repo.repo_id}"

    # -- read routes -------------------------------------------------------------------------------
    def _resolve(self, h, kind, repo: str, rev: str, path: str) -> Reply:
        _, r = self._read(h, kind, repo, rev)
        if path not in r.files:
            return _error(404, "EntryNotFound", f"{path} does not exist on {rev}", **{"X-Repo-Commit": r.commit})
        data = r.files[path]
        headers = {"X-Repo-Commit": r.commit, "ETag": f'"{_git_oid(data)}"', "Accept-Ranges": "bytes"}
        if path in r.lfs:
            headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))})
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range") or "")
        if h.command == "GET" and rng:
            start, end = int(rng.group(1)), int(rng.group(2) or len(data) - 1)
            part = data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{len(data)}"
            return Reply(206, part, headers)
        return Reply(200, data, headers)

    def _info(self, h, kind, repo: str, rev: str | None) -> Reply:
        found, r = self._read(h, kind, repo, rev)
        return Reply(200, {"_id": repo, "id": repo, "modelId": repo, "sha": r.commit, "private": found.private,
                           "gated": "manual" if found.token else False, "disabled": False, "tags": [],
                           "downloads": 0, "likes": 0, "lastModified": "2026-01-01T00:00:00.000Z",
                           "siblings": [{"rfilename": p, "size": len(d)} for p, d in sorted(r.files.items())]})

    def _tree(self, h, kind, repo: str, rev: str, path: str | None = None) -> Reply:
        _, r = self._read(h, kind, repo, rev)
        base = (path or "").strip("/")
        prefix = base + "/" if base else ""
        recursive = h.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        files, dirs = [], set()
        for p in sorted(f for f in r.files if f.startswith(prefix)):
            parts = p[len(prefix):].split("/")
            files += [p] if recursive or len(parts) == 1 else []
            depth = len(parts) - 1 if recursive else min(1, len(parts) - 1)
            dirs.update(prefix + "/".join(parts[:i]) for i in range(1, depth + 1))
        return Reply(200, [_entry(r, p) for p in files + sorted(dirs)])

    def _paths_info(self, h, kind, repo: str, rev: str) -> Reply:
        _, r = self._read(h, kind, repo, rev)
        is_json = "json" in h.headers.get("Content-Type", "")
        paths = [p.strip("/") for p in (json.loads(h.body)["paths"] if is_json else
                                        parse_qs(h.body.decode()).get("paths", []))]
        return Reply(200, [_entry(r, p) for p in paths
                           if p in r.files or p == "" or any(f.startswith(p + "/") for f in r.files)])

    # -- write routes ------------------------------------------------------------------------------
    def _create(self, h) -> Reply:
        self._need_writer(h)
        body = json.loads(h.body)
        private = bool(body.get("private")) or body.get("visibility") == "private"   # 1.x sends private, 2.x visibility
        repo = HubRepo(f"{body.get('organization') or self.user}/{body['name']}", body.get("type") or "model", private)
        if (repo.kind, repo.repo_id) in self.repos:
            return Reply(409, {"error": "You already created this repo", "url": self._url_of(repo)})
        self.repos[(repo.kind, repo.repo_id)] = repo
        repo.add("main", {})
        return Reply(200, {"url": self._url_of(repo), "name": repo.repo_id})

    def _validate_yaml(self, h) -> Reply:
        content = json.loads(h.body)["content"]
        try:
            yaml.safe_load(content.split("---")[1]) if content.startswith("---") else None
        except yaml.YAMLError as e:
            return Reply(400, {"errors": [{"message": str(e)}]})
        return Reply(200, {"errors": [], "warnings": []})

    def _whoami(self, h) -> Reply:
        self._need_writer(h)
        return Reply(200, {"type": "user", "name": self.user, "auth": {"accessToken": {"role": "write"}}})

    def _preupload(self, h, kind, repo: str, rev: str) -> Reply:
        self._find(h, kind, repo, write=True)
        return Reply(200, {"files": [{"path": f["path"], "shouldIgnore": False, "oid": None,
                                      "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular"}
                                     for f in json.loads(h.body)["files"]]})

    def _lfs_batch(self, h, kind, repo: str) -> Reply:
        self._find(h, kind, repo, write=True)
        objects = [{"oid": o["oid"], "size": o["size"]} | ({} if o["oid"] in self.objects else {
                    "authenticated": True, "actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"}}})
                   for o in json.loads(h.body)["objects"]]
        return Reply(200, {"transfer": "basic", "objects": objects},
                     {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, h, oid: str) -> Reply:
        if hashlib.sha256(h.body).hexdigest() != oid:
            return _error(400, "BadRequest", "sha256 mismatch")
        self.objects[oid] = h.body
        return Reply(200)

    def _commit(self, h, kind, repo: str, rev: str) -> Reply:
        found = self._find(h, kind, repo, write=True)
        lines = [json.loads(line) for line in h.body.splitlines() if line.strip()]
        files, lfs, deleted = self._apply(found.revisions.get(rev) or Revision("", {}), lines)
        header = next(x["value"] for x in lines if x["key"] == "header")
        new = found.add(rev, files, lfs)
        found.commits.append({"summary": header["summary"], "description": header.get("description", ""),
                              "paths": sorted(x["value"]["path"] for x in lines if x["key"] != "header"),
                              "deleted": deleted, "commit": new.commit})
        return Reply(200, {"commitUrl": f"{self._url_of(found)}/commit/{new.commit}", "commitOid": new.commit,
                           "success": True})

    def _apply(self, base: Revision, lines: list[dict]) -> tuple[dict[str, bytes], set[str], list[str]]:
        """The files and LFS paths after a commit's operations on `base`, and the paths it deleted."""
        files, lfs, deleted = dict(base.files), set(base.lfs), []
        for key, v in ((x["key"], x["value"]) for x in lines):
            if key == "file":
                files[v["path"]] = base64.b64decode(v["content"])
                lfs.discard(v["path"])
            elif key == "lfsFile":
                if v["oid"] not in self.objects:
                    raise Refused(_error(422, "BadRequest", f"LFS object {v['oid']} was not uploaded"))
                files[v["path"]] = self.objects[v["oid"]]
                lfs.add(v["path"])
            elif key in ("deletedFile", "deletedFolder"):
                gone = v["path"].rstrip("/")
                deleted.append(v["path"])
                files = {p: d for p, d in files.items() if p != gone and not p.startswith(gone + "/")}
        return files, lfs & set(files), deleted
