"""A loopback Hugging Face hub for tests: the HTTP routes `huggingface_hub` uses to create a repo, commit
to it (preupload, LFS batch + upload, NDJSON commit) and read it back (repo info, tree, resolve), for
model and dataset repos. Point a process at it with `HF_ENDPOINT=server.url` (and
`HF_HUB_DISABLE_XET=1`: uploads then take the LFS route, which this server speaks; hf_xet's own CAS
protocol it does not).

Written to be merged with the download-side `tests/hub_server.py`: `HubRepo` holds a repo's files,
`Routes` maps (method, path) to a handler, and `LoopbackHub` serves them. State is in memory.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml

LFS_SUFFIXES = (".safetensors", ".parquet", ".bin", ".pt", ".png", ".jpg")   # as the hub's .gitattributes
ID = r"(?P<repo>[^/]+/[^/]+?)"
KIND = r"(?P<kind>models|datasets)"


@dataclass
class HubRepo:
    repo_id: str
    kind: str                                   # "model" or "dataset"
    private: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)  # paths stored as LFS objects
    commits: list[dict] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return hashlib.sha1(f"{self.repo_id}:{len(self.commits)}".encode()).hexdigest()

    def entry(self, path: str) -> dict:
        data = self.files[path]
        e = {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data)}
        if path in self.lfs:
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class LoopbackHub:
    """`with LoopbackHub(token) as hub:` — `hub.url`, `hub.repos`, `hub.requests` (method, path,
    whether a bearer token came with it)."""

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.objects: dict[str, bytes] = {}   # LFS uploads by sha256
        self.requests: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            server_hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "LoopbackHub":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def repo(self, repo_id: str, kind: str = "model") -> HubRepo:
        return self.repos[(kind, repo_id)]


class _Handler(BaseHTTPRequestHandler):
    server_hub: LoopbackHub
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------------
    def log_message(self, *args) -> None:
        pass

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.server_hub.token}"

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None, ctype="application/json") -> None:
        self._send(status, json.dumps(obj).encode(), headers, ctype)

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _dispatch(self) -> None:
        hub = self.server_hub
        url = urlparse(self.path)
        path = unquote(url.path)
        with hub.lock:
            hub.requests.append((self.command, self.path, self._authorized()))
        for method, pattern, handler in ROUTES:
            m = re.fullmatch(pattern, path)
            if m and method == self.command:
                with hub.lock:
                    return handler(self, parse_qs(url.query), **m.groupdict())
        self._error(404, "EntryNotFound", f"no route {self.command} {path}")

    do_GET = do_POST = do_PUT = do_HEAD = _dispatch

    def _repo(self, kind: str, repo: str, write: bool = False) -> HubRepo | None:
        """The repo, or None after answering 401/404 (private repos need the token to be read)."""
        if write and not self._authorized():
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return None
        found = self.server_hub.repos.get((kind.rstrip("s"), repo))
        if found is None or (found.private and not self._authorized()):
            self._error(404, "RepoNotFound", f"Repository {repo} not found")
            return None
        return found

    # -- write routes -----------------------------------------------------------------------------
    def create_repo(self, query) -> None:
        if not self._authorized():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        body = json.loads(self._body())
        kind = body.get("type") or "model"
        repo_id = f"{body.get('organization')}/{body['name']}"
        url = f"{self.server_hub.url}/{'datasets/' if kind == 'dataset' else ''}{repo_id}"
        key = (kind, repo_id)
        if key in self.server_hub.repos:
            return self._json(409, {"error": "You already created this repo", "url": url})
        self.server_hub.repos[key] = HubRepo(repo_id, kind, private=bool(body.get("private")))
        self._json(200, {"url": url, "name": repo_id})

    def validate_yaml(self, query) -> None:
        content = json.loads(self._body())["content"]
        try:
            if content.startswith("---"):
                yaml.safe_load(content.split("---")[1])
        except yaml.YAMLError as e:
            return self._json(400, {"errors": [{"message": str(e)}]})
        self._json(200, {"errors": [], "warnings": []})

    def preupload(self, query, kind, repo, rev) -> None:
        found = self._repo(kind, repo, write=True)
        if found is None:
            return
        files = json.loads(self._body())["files"]
        self._json(200, {"files": [{"path": f["path"], "shouldIgnore": False, "oid": None,
                                    "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular"}
                                   for f in files]})

    def lfs_batch(self, query, repo, prefix="") -> None:
        kind = "datasets" if prefix else "models"
        if self._repo(kind, repo, write=True) is None:
            return
        body = json.loads(self._body())
        objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                    "actions": {"upload": {"href": f"{self.server_hub.url}/lfs-upload/{o['oid']}"}}}
                   for o in body["objects"] if o["oid"] not in self.server_hub.objects]
        objects += [{"oid": o["oid"], "size": o["size"]} for o in body["objects"] if o["oid"] in self.server_hub.objects]
        self._json(200, {"transfer": "basic", "objects": objects}, ctype="application/vnd.git-lfs+json")

    def lfs_upload(self, query, oid) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "BadRequest", "sha256 mismatch")
        self.server_hub.objects[oid] = data
        self._send(200)

    def commit(self, query, kind, repo, rev) -> None:
        found = self._repo(kind, repo, write=True)
        if found is None:
            return
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        files, lfs, deleted = dict(found.files), set(found.lfs), []
        for item in lines:
            v = item["value"]
            if item["key"] == "file":
                files[v["path"]] = base64.b64decode(v["content"])
                lfs.discard(v["path"])
            elif item["key"] == "lfsFile":
                if v["oid"] not in self.server_hub.objects:
                    return self._error(422, "BadRequest", f"LFS object {v['oid']} was not uploaded")
                files[v["path"]] = self.server_hub.objects[v["oid"]]
                lfs.add(v["path"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deleted.append(v["path"])
                for p in [p for p in files if p == v["path"] or p.startswith(v["path"].rstrip("/") + "/")]:
                    del files[p]
        found.files, found.lfs = files, lfs
        found.commits.append({"summary": header["summary"], "description": header.get("description", ""),
                              "paths": sorted(x["value"]["path"] for x in lines if x["key"] != "header"),
                              "deleted": deleted})
        prefix = "datasets/" if found.kind == "dataset" else ""
        self._json(200, {"commitUrl": f"{self.server_hub.url}/{prefix}{repo}/commit/{found.sha}",
                         "commitOid": found.sha, "success": True})

    # -- read routes ------------------------------------------------------------------------------
    def repo_info(self, query, kind, repo, rev="main") -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        self._json(200, {"id": repo, "_id": repo, "sha": found.sha, "private": found.private,
                         "siblings": [{"rfilename": p, "size": len(d)} for p, d in sorted(found.files.items())],
                         "tags": [], "downloads": 0, "likes": 0, "lastModified": "2026-01-01T00:00:00.000Z"})

    def tree(self, query, kind, repo, rev, sub="") -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        sub = (sub or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        inside = [p for p in sorted(found.files) if not sub or p.startswith(sub + "/")]
        entries, folders = [], set()
        for p in inside:
            rest = p[len(sub) + 1:] if sub else p
            if recursive or "/" not in rest:
                entries.append(found.entry(p))
            if "/" in rest:
                parts = rest.split("/")[:-1]
                depth = len(parts) if recursive else 1
                for i in range(1, depth + 1):
                    folders.add("/".join(([sub] if sub else []) + parts[:i]))
        entries += [{"type": "directory", "path": f, "oid": _git_oid(f.encode()), "size": 0} for f in sorted(folders)]
        self._json(200, entries)

    def paths_info(self, query, kind, repo, rev) -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        raw = self._body().decode()
        ctype = self.headers.get("Content-Type", "")
        paths = json.loads(raw)["paths"] if "json" in ctype else parse_qs(raw).get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in found.files:
                out.append(found.entry(p))
            elif any(f.startswith(p + "/") for f in found.files) or p == "":
                out.append({"type": "directory", "path": p, "oid": _git_oid(p.encode()), "size": 0})
        self._json(200, out)

    def resolve(self, query, repo, rev, file, prefix="") -> None:
        found = self._repo("datasets" if prefix else "models", repo)
        if found is None:
            return
        if file not in found.files:
            return self._error(404, "EntryNotFound", f"{file} does not exist on {rev}")
        data = found.files[file]
        headers = {"X-Repo-Commit": found.sha, "ETag": f'"{_git_oid(data)}"', "Accept-Ranges": "bytes"}
        if file in found.lfs:
            headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))})
        self._send(200, data, headers, ctype="application/octet-stream")

    def whoami(self, query) -> None:
        if not self._authorized():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        self._json(200, {"type": "user", "name": "someone", "auth": {"accessToken": {"role": "write"}}})


REV = r"(?P<rev>[^/]+)"
ROUTES = [
    ("POST", r"/api/repos/create", _Handler.create_repo),
    ("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    ("GET", r"/api/whoami-v2", _Handler.whoami),
    ("POST", rf"/api/{KIND}/{ID}/preupload/{REV}", _Handler.preupload),
    ("POST", rf"/api/{KIND}/{ID}/commit/{REV}", _Handler.commit),
    ("POST", rf"/(?P<prefix>datasets/)?{ID}\.git/info/lfs/objects/batch", _Handler.lfs_batch),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", _Handler.lfs_upload),
    ("GET", rf"/api/{KIND}/{ID}/revision/{REV}", _Handler.repo_info),
    ("GET", rf"/api/{KIND}/{ID}/tree/{REV}(?P<sub>/.*)?", _Handler.tree),
    ("POST", rf"/api/{KIND}/{ID}/paths-info/{REV}", _Handler.paths_info),
    ("GET", rf"/api/{KIND}/{ID}", _Handler.repo_info),
    ("GET", rf"/(?P<prefix>datasets/)?{ID}/resolve/{REV}/(?P<file>.+)", _Handler.resolve),
    ("HEAD", rf"/(?P<prefix>datasets/)?{ID}/resolve/{REV}/(?P<file>.+)", _Handler.resolve),
]
