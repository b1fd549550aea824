"""Safe unpacking of zip and tar archives (gz, bz2, xz) into a fresh folder.

Every member is checked before a byte is written: a path that is absolute, has a drive letter or
climbs out with `..`, a symbolic or hard link, and a device, FIFO or socket (a tar entry's type, a zip
member's Unix mode) all refuse the whole archive. Integrity comes from reading every member in full:
zip checks each member's CRC-32 and tar.gz its gzip CRC, so a damaged archive fails here. A file that
is not an archive (a CSV) unpacks to itself.

Bombs: the bytes actually written are counted as they are written (headers are not trusted), and an
archive refuses once it has written more than MAX_UNPACKED bytes, or more than RATIO_FLOOR bytes and
MAX_RATIO times its own size. Any refusal removes what was written.
"""
from __future__ import annotations

import gzip
import lzma
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from focusclip.core.errors import fail
from focusclip.core.progress import progress
from focusclip.pipeline.download.fetch import naming

CHUNK = 1 << 20
# Bomb limits per archive. The real releases unpack to at most ~29 GB (Kinetics-400 val, estimated;
# MPII 12.9 GB; catalog.py) and about 3 times their size at most (FER2013's 287 MB CSV in a 92 MB
# tar.gz, as commonly reported); JPEG, MP4 and .mat members barely compress.
MAX_UNPACKED = 100 * 2**30
MAX_RATIO = 200
RATIO_FLOOR = 64 * 2**20      # the ratio is checked past this many bytes: small archives may compress well
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# what a damaged archive raises; bz2 raises a bare OSError (errno None), unlike a full disk
_DAMAGE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, zipfile.BadZipFile,
           OSError)


def archive_kind(path: Path) -> str:
    """zip, tar or file: by the name's suffix first (a damaged .zip must not pass as a plain file),
    then by content (a dropped-in `archive` of any name)."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else "file"
    except OSError:
        return "file"


def unpack(archive: Path, out: Path, label: str | None = None) -> int:
    """Unpack `archive` into the new folder `out` (which must not exist); returns the files written.
    On any refusal or damage `out` is removed and a one-line user error raised."""
    label = label or archive.name
    out.mkdir(parents=True)
    try:
        kind = archive_kind(archive)
        if kind == "file":
            shutil.copyfile(archive, out / archive.name)
            return 1
        size = archive.stat().st_size
        with progress(total=size, desc=f"unpack {archive.name}", unit="B", unit_scale=True,
                      unit_divisor=1024) as bar:
            return (_unzip if kind == "zip" else _untar)(archive, out, _Budget(label, size), bar)
    except BaseException as e:
        shutil.rmtree(out, ignore_errors=True)
        if isinstance(e, _DAMAGE) and not (isinstance(e, OSError) and e.errno is not None):  # not ENOSPC…
            raise fail(f"the archive is damaged or truncated ({type(e).__name__}: {e})", label,
                       "rerun to download it again, or check the file you passed; "
                       "a damaged download is not kept") from None
        raise


def member_path(name: str, label: str) -> PurePosixPath | None:
    """The safe relative path of a member, None for the archive's own root entry (`./`)."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise _refuse(label, name, "has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(label, name, "climbs out of the target folder with '..'")
    return PurePosixPath(*parts) if parts else None


def _refuse(label: str, member: str, why: str):
    return fail(f"member '{member}' {why}; the archive is refused and nothing was unpacked", label,
                "use the dataset's official archive")


def _target(out: Path, rel: PurePosixPath, label: str, name: str) -> Path:
    target = out.joinpath(*rel.parts)
    if not target.resolve().is_relative_to(out.resolve()):
        raise _refuse(label, name, "resolves outside the target folder")
    return target


class _Budget:
    """The bytes an archive has written, against the bomb limits; `take` is called before each write."""

    def __init__(self, label: str, archive_bytes: int):
        self.label, self.archive_bytes, self.written = label, archive_bytes, 0

    def take(self, n: int) -> None:
        self.written += n
        if self.written > MAX_UNPACKED:
            why = f"more than {_size(MAX_UNPACKED)}, the limit per archive"
        elif self.written > RATIO_FLOOR and self.written > MAX_RATIO * self.archive_bytes:
            why = f"more than {MAX_RATIO} times its own {self.archive_bytes:,} bytes (a decompression bomb)"
        else:
            return
        raise fail(f"the archive unpacks to {why}; it is refused and nothing of it was kept", self.label,
                   f"use the dataset's official archive; the real ones unpack to under {_size(MAX_UNPACKED)} "
                   f"and {MAX_RATIO} times their size")


def _size(n: int) -> str:
    return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / 2**20:g} MiB"


def _unzip(archive: Path, out: Path, budget: _Budget, bar) -> int:
    n, label = 0, budget.label
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:   # check every name and mode before writing anything
            member_path(info.filename, label)
            mode = info.external_attr >> 16           # the Unix mode, where the zip was made on Unix
            if stat.S_ISLNK(mode):
                raise _refuse(label, info.filename, "is a symbolic link")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise _refuse(label, info.filename, "is a device, FIFO or other special file")
        for info in infos:
            rel = member_path(info.filename, label)
            if rel is None:
                continue
            # reading a zip member to the end checks its CRC
            if _write_member(out, rel, budget, info.filename, info.is_dir(), lambda info=info: zf.open(info)):
                n += 1
                bar.update(info.compress_size)
    return n


def _write_member(out: Path, rel, budget: _Budget, name: str, is_dir: bool, open_src) -> bool:
    """One checked archive member under `out`: a folder is made, a file streamed from `open_src()`
    within the budget. True when a file was written."""
    target = _target(out, rel, budget.label, name)
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_src() as src, naming(target), open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            budget.take(len(chunk))
            dst.write(chunk)
    return True


def _untar(archive: Path, out: Path, budget: _Budget, bar) -> int:
    """Streamed: members are checked one by one as they come (a tar.gz is read once)."""
    n, label = 0, budget.label
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tf:
        for m in tf:
            rel = member_path(m.name, label)
            if m.issym() or m.islnk():
                raise _refuse(label, m.name, f"is a {'symbolic' if m.issym() else 'hard'} link")
            if not (m.isfile() or m.isdir()):
                raise _refuse(label, m.name, "is a device, FIFO or other special file")
            if rel is None:
                continue
            if _write_member(out, rel, budget, m.name, m.isdir(), lambda m=m: tf.extractfile(m)):
                n += 1
                bar.update(raw.tell() - bar.n)          # compressed bytes read so far
    return n
