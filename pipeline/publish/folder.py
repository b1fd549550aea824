"""What a built folder holds, as its `report.json` records it under `files`, and the check that the
folder still holds it: a folder is "up to date" only when every listed file exists with its recorded
size (docs/publish.md). The sha256 is recorded for anyone who wants to verify the bytes; the rerun
check reads sizes only, so it stays instant for a folder of many GB."""
from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from focusclip.pipeline.publish.hub import folder_files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:   # small reads: a shard is never held in memory
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(root: Path) -> dict[str, dict]:
    """{relative POSIX path: {"size", "sha256"}} of every file under root but report.json (which
    holds this list)."""
    return {rel: {"size": (root / rel).stat().st_size, "sha256": _sha256(root / rel)}
            for rel in folder_files(root)}


def why_not_intact(root: Path, files: object) -> str | None:
    """Why the folder no longer holds what its report lists, or None when every file is there with
    its recorded size. The list comes from a file on disk, so every entry is checked before use."""
    if not isinstance(files, dict) or not files:
        return "report.json records no file sizes (an older publish)"
    for rel, info in files.items():
        parts = PurePosixPath(rel).parts if isinstance(rel, str) else ()
        size = info.get("size") if isinstance(info, dict) else None
        if not parts or parts[0] == "/" or ".." in parts or not isinstance(size, int):
            return f"report.json lists a malformed file entry {rel!r}"
        what = "shard" if rel.endswith(".parquet") else "file"
        path = root / rel
        if not path.is_file():
            return f"missing {what} {rel}"
        if path.stat().st_size != size:
            return f"size differs: {what} {rel} has {path.stat().st_size} bytes, report.json says {size}"
    return None
