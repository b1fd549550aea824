"""From an unpacked file to the dataset folder: find where its layout sits inside it, check the
layout's counts and checksums there, then move what it keeps into place (renames, no copies)."""
from __future__ import annotations

import csv
import hashlib
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from focusclip.pipeline.download.spec import Count, Layout, kept, match

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # FER2013's pixels cells are ~8 KB


@dataclass
class Checks:
    """What a folder was found to hold: counts by pattern, and the problems, by severity."""
    found: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def files_under(folder: Path) -> list[str]:
    """Relative POSIX paths of the regular files under `folder`, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        rel = Path(dirpath).relative_to(folder).as_posix()
        out += [f if rel == "." else f"{rel}/{f}" for f in sorted(filenames)]
    return out


def find_prefix(files: list[str], anchor: str) -> str | None:
    """The folder (POSIX, "" for the top) under which `anchor` matches the most files; the shallowest
    wins a tie. None when it matches nowhere."""
    hits: Counter = Counter()
    for rel in files:
        parts = rel.split("/")
        for k in range(len(parts)):
            if match("/".join(parts[k:]), anchor):
                hits["/".join(parts[:k])] += 1
    if not hits:
        return None
    return min(hits, key=lambda p: (-hits[p], p.count("/") + bool(p), p))


def under(files: list[str], prefix: str, keep: tuple[str, ...]) -> list[str]:
    """The files below `prefix`, relative to it, that the layout keeps."""
    cut = len(prefix) + 1 if prefix else 0
    inside = [f[cut:] for f in files if not prefix or f.startswith(prefix + "/")]
    return [f for f in inside if kept(f, keep)]


def check_layout(base: Path, rels: list[str], layout: Layout) -> Checks:
    """Counts and checksums of `layout` over the files `rels` (relative to `base`)."""
    checks = Checks()
    for count in layout.counts:
        check_count(base, rels, count, checks)
    present = set(rels)
    for rel, digest in layout.checksums:
        if rel in present:
            algo, want = digest.split(":", 1)
            got = file_digest(base / rel, algo)
            if got != want:
                checks.errors.append(f"{rel}: {algo.upper()} {got} differs from the published {want}")
    return checks


def check_count(base: Path, rels: list[str], count: Count, checks: Checks) -> None:
    matched = [r for r in rels if match(r, count.pattern)]
    n = len(matched) if count.what == "files" else sum(_rows(base / r, count.what) for r in matched)
    checks.found[f"{count.pattern} ({count.what})"] = n
    if n == count.expected:
        return
    per = f" (per {count.source})" if count.source else ""
    msg = f"expected {count.expected:,} {count.what} in {count.pattern}{per}, found {n:,}"
    (checks.errors if count.strict else checks.warnings).append(msg)


def _rows(path: Path, what: str) -> int:
    """CSV data rows (one header line excluded) or non-empty lines."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        if what == "lines":
            return sum(1 for line in f if line.strip())
        return max(0, sum(1 for row in csv.reader(f) if row) - 1)


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def move_into(src: Path, rels: list[str], dest: Path, whole: bool) -> None:
    """Move `rels` (relative to `src`) under `dest`, replacing files of the same name. With `whole`
    (everything under `src` is kept), folders missing in `dest` move in one rename."""
    if whole:
        _merge(src, dest)
        return
    for rel in rels:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src / rel, target)


def _merge(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dest / entry.name
        if entry.is_dir() and target.is_dir():
            _merge(entry, target)
        elif entry.is_dir() or not target.is_dir():
            os.replace(entry, target)
