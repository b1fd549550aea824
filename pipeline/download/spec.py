"""What a dataset entry declares: the files it is made of, where their contents go, and what must hold
once they are there. The entries themselves are in `catalog.py`.

Paths inside a dataset are POSIX patterns, matched segment by segment: `*`, `?` and `[…]` stay inside
one folder, `**` spans any number of folders. `images/*.jpg` matches `images/015601864.jpg`, not
`images/a/b.jpg`.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from focusclip.core.errors import fail


@dataclass(frozen=True)
class Count:
    """How many files (or CSV data rows, or text lines) a pattern must match after unpacking."""
    pattern: str                 # relative to the folder the layout fills (its `into`)
    expected: int
    what: str = "files"          # files | rows (CSV data rows, the header excluded) | lines (non-empty)
    strict: bool = True          # False: a third-party figure; a mismatch is a warning, not an error
    source: str = ""             # where the figure comes from


@dataclass(frozen=True)
class Layout:
    """One way a file's contents sit in the dataset folder. The folder inside the file under which
    `anchor` matches is found by itself, so archives with or without a top folder both work."""
    anchor: str                          # e.g. "UTKFace/*.jpg.chip.jpg", relative to `into`
    into: str = ""                       # folder under the dataset folder that receives the contents
    keep: tuple[str, ...] = ()           # patterns (relative to `into`) to keep; () keeps everything
    counts: tuple[Count, ...] = ()
    checksums: tuple[tuple[str, str], ...] = ()  # (path relative to `into`, "md5:…" or "sha256:…")


@dataclass(frozen=True)
class Part:
    """One file of a dataset: an archive or a plain file such as a CSV."""
    name: str                            # the file name its source gives it
    layouts: tuple[Layout, ...]          # tried in order; the first whose anchor is found is used
    url: str | None = None               # None: behind a form or an account (dropped in with --from)
    url_list: bool = False               # `url` is a text file listing the archives' URLs (Kinetics)
    sha256: str | None = None            # of the file itself, when published or recorded
    size: str = ""                       # as its source states it, for --list


@dataclass(frozen=True)
class Dataset:
    name: str                            # the command-line name
    title: str
    folder: str                          # under --root
    parts: tuple[Part, ...]
    licence: str
    size: str
    access: str                          # "public", "form" (request by form) or "account" (Kaggle)
    page: str                            # where to read about it, or to request it
    tasks: tuple[str, ...]               # focus-eval task ids that read it
    finds: str                           # how our reader finds it under --root
    request: str = ""                    # manual datasets: what the user is sent and must drop in
    counts: tuple[Count, ...] = ()       # over the whole folder (parts that add up, e.g. Kinetics)
    needs: tuple[str, ...] = ()          # other datasets its reader needs (FER+ needs FER2013)
    next: tuple[str, ...] = ()           # commands to run next; {root} is the --root folder

    @property
    def manual(self) -> bool:
        return any(p.url is None for p in self.parts)


# ----------------------------------------------------------------------------------- paths
def match(rel: str, pattern: str) -> bool:
    """Does the relative POSIX path `rel` match `pattern` (segment-wise glob, `**` spans folders)?"""
    return _match_parts(rel.split("/"), pattern.split("/"))


def _match_parts(parts: list[str], pats: list[str]) -> bool:
    if not pats:
        return not parts
    if pats[0] == "**":
        return any(_match_parts(parts[i:], pats[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pats[0]) and _match_parts(parts[1:], pats[1:])


def kept(rel: str, keep: tuple[str, ...]) -> bool:
    """A path is kept when `keep` is empty or one of its patterns matches the path or a folder above it."""
    if not keep:
        return True
    parts = rel.split("/")
    return any(match("/".join(parts[:i]), k) for k in keep for i in range(1, len(parts) + 1))


# ----------------------------------------------------------------------------------- mirrors
def check_mirror(mirror: str) -> str:
    """`http(s)://host[:port][/prefix]`, without a trailing slash; anything else is a user error."""
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise fail(f"'{mirror}' is not an http(s)://host[:port][/path] URL", "--mirror / FOCUSCLIP_MIRROR",
                   "e.g. --mirror http://mirror.example.org/datasets")
    return mirror.rstrip("/")


def mirrored(url: str, mirror: str | None) -> str:
    """The source URL with its scheme and host replaced by the mirror's; path and query are kept, after
    the mirror's own path: https://host/a/b.zip → http://mirror/prefix/a/b.zip."""
    if not mirror:
        return url
    src, dst = urlsplit(url), urlsplit(mirror)
    return urlunsplit((dst.scheme, dst.netloc, dst.path.rstrip("/") + src.path, src.query, ""))
