"""`focus-data download`: fetch (or take from --from), verify, unpack and lay out a dataset.

Everything in progress lives in `ROOT/.downloads/<name>/`: the downloads (`*.part` while they
arrive), `state.json` (the parts already placed) and `staging/`, the dataset folder being built.
Each part is unpacked into a fresh folder, checked, and moved into `staging/`; when every part is
there and the dataset's counts hold, `staging/` is renamed to `ROOT/<folder>` with `download.json`
(what was fetched, from where, its SHA-256, what was counted) inside. A rerun skips a folder that has
`download.json`, adopts a folder laid out by hand when it passes the same checks, and otherwise
resumes where the last run stopped. A refused file leaves nothing behind: the archive and its record
in `state.json` go, and the work folder too when nothing else is in it.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from focusclip.core.errors import FocusError, fail
from focusclip.core.io import read_json, write_json
from focusclip.core.report import Report
from focusclip.pipeline.download.catalog import CATALOG
from focusclip.pipeline.download.fetch import GotWebPage, fetch, naming
from focusclip.pipeline.download.place import (Checks, check_count, check_layout, files_under, find_prefix,
                                               move_into, under)
from focusclip.pipeline.download.spec import Dataset, Part, check_mirror, match, mirrored
from focusclip.pipeline.download.unpack import unpack

WORK = ".downloads"
MARKER = "download.json"


@dataclass(frozen=True)
class DownloadOptions:
    root: Path
    mirror: str | None = None
    sources: tuple[Path, ...] = ()      # --from: files the user downloaded by hand
    keep_archives: bool = False
    force: bool = False
    retries: int = 3
    backoff_s: float = 2.0
    allow_redirect: tuple[str, ...] = ()   # hosts a source may redirect to besides its own


@dataclass
class Outcome:
    """What happened to one dataset: `state` is complete, skipped, adopted, pending or failed."""
    name: str
    state: str
    message: str
    warnings: list[str] = field(default_factory=list)
    next: list[str] = field(default_factory=list)


def resolve_names(names: list[str], catalog: dict[str, Dataset] = CATALOG) -> list[str]:
    """`all` → every dataset, in catalog order; unknown names are a user error listing the known ones."""
    if not names:
        raise fail("no dataset named", "NAME", f"name one or more of: {', '.join(catalog)}, or all")
    out: list[str] = []
    for name in names:
        if name != "all" and name not in catalog:
            raise fail(f"unknown dataset '{name}'", "NAME", f"use one of: {', '.join(catalog)}, or all")
        out += [n for n in (catalog if name == "all" else [name]) if n not in out]
    return out


def run_download(names: list[str], opts: DownloadOptions,
                 catalog: dict[str, Dataset] = CATALOG) -> list[Outcome]:
    """Download each dataset in turn; a failure is recorded and the next dataset still runs."""
    names = resolve_names(names, catalog)
    if opts.sources and len(names) != 1:
        raise fail("--from needs exactly one dataset name", "--from", "e.g. focus-data download emotic --from FILE")
    for src in opts.sources:
        if not Path(src).is_file():
            raise fail("file not found", str(src), "pass the file you downloaded")
    opts.root.mkdir(parents=True, exist_ok=True)
    if opts.mirror:
        check_mirror(opts.mirror)
    outcomes = []
    for name in names:
        work = opts.root / WORK / name
        try:
            with naming(work):                # an OSError that names no file happened in there
                outcomes.append(download_dataset(catalog[name], opts))
        except FocusError as e:
            outcomes.append(Outcome(name, "failed", str(e)))
        _remove_if_empty(work)                # a refusal or failure leaves no empty work folder
        _remove_if_empty(opts.root / WORK)
    return outcomes


def download_dataset(ds: Dataset, opts: DownloadOptions) -> Outcome:
    final = opts.root / ds.folder
    if (final / MARKER).is_file() and not opts.force:
        return Outcome(ds.name, "skipped", f"already complete in {final} (skipped; --force downloads it again)",
                       next=_next(ds, opts))
    if final.exists() and not opts.force:
        return _adopt(ds, final, opts)
    work = opts.root / WORK / ds.name
    if opts.force:
        shutil.rmtree(work, ignore_errors=True)
    state = _load_state(work)
    for src in opts.sources:
        _place_dropped(Path(src), ds, work, state)
    parts = _expand(ds, work, state, opts)
    for part in parts:
        if part.name not in state["placed"] and part.url:
            _fetch_and_place(part, ds, work, state, opts)
    missing = [p for p in parts if p.name not in state["placed"]]
    if missing:
        return _pending(ds, missing, state, opts)
    return _commit(ds, work, state, final, opts)


# ----------------------------------------------------------------------------------- parts
def _load_state(work: Path) -> dict:
    path = work / "state.json"
    state = read_json(path) if path.is_file() else {"placed": {}}
    for stale in work.glob("unpack-*"):       # an unpack cut short by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    return state


def _save_state(work: Path, state: dict) -> None:
    write_json(work / "state.json", state)


def _expand(ds: Dataset, work: Path, state: dict, opts: DownloadOptions) -> list[Part]:
    """The parts, with a URL list (Kinetics' k400_val_path.txt) replaced by the archives it lists."""
    parts: list[Part] = []
    for part in ds.parts:
        if not part.url_list:
            parts.append(part)
            continue
        listing, url = work / part.name, mirrored(part.url, opts.mirror)
        if not listing.is_file():
            got = fetch(url, listing, retries=opts.retries, backoff_s=opts.backoff_s,
                        allow_redirect=opts.allow_redirect)
            state.setdefault("fetched", {})[part.name] = {"source": url, "bytes": got.bytes, "sha256": got.sha256}
        urls = [ln.strip() for ln in listing.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
            listing.unlink()
            raise fail("not a list of archive URLs (one per line)", part.url, "check the source or --mirror")
        parts += [Part(Path(urlsplit(u).path).name, part.layouts, url=u) for u in urls]
    return parts


def _fetch_and_place(part: Part, ds: Dataset, work: Path, state: dict, opts: DownloadOptions) -> None:
    url = mirrored(part.url, opts.mirror)
    archive = work / part.name
    if not archive.is_file():
        try:
            got = fetch(url, archive, sha256=part.sha256, retries=opts.retries, backoff_s=opts.backoff_s,
                        allow_redirect=opts.allow_redirect)
        except GotWebPage:
            raise fail("the server answered with a web page (a sign-in, quota or virus-scan page), not the file",
                       f"{part.name} from {url}", f"download it in a browser from {ds.page}, then run: "
                       f"focus-data download {ds.name} --root {opts.root} --from {part.name}") from None
        record = {"source": url, "bytes": got.bytes, "sha256": got.sha256, "resumed_from": got.resumed_from}
    else:
        record = state.get("fetched", {}).get(part.name, {"source": url})
    state.setdefault("fetched", {})[part.name] = record
    _save_state(work, state)
    try:
        if not _place(archive, [part], work, state, label=f"{part.name} from {url}"):
            raise fail(f"holds none of {_anchors(part)}", url, "the source changed its layout; check it or --mirror")
    except FocusError:
        archive.unlink(missing_ok=True)       # a bad download is never kept: a rerun fetches it again
        _forget(work, state, part.name)
        raise
    if not opts.keep_archives:
        archive.unlink()


def _forget(work: Path, state: dict, name: str) -> None:
    """Drop a refused file's record; with nothing placed or fetched left, `state.json` goes too."""
    state.get("fetched", {}).pop(name, None)
    if state["placed"] or state.get("fetched"):
        _save_state(work, state)
    else:
        (work / "state.json").unlink(missing_ok=True)


def _place_dropped(src: Path, ds: Dataset, work: Path, state: dict) -> None:
    """A file the user downloaded: place every part it holds; a file that holds none is refused."""
    open_parts = [p for p in ds.parts if not p.url_list and p.name not in state["placed"]]
    if not open_parts:
        return
    placed = _place(src, open_parts, work, state, label=str(src))
    if not placed:
        wanted = "; ".join(f"{p.name}: {_anchors(p)}" for p in open_parts)
        raise fail(f"not a {ds.title} file: it holds none of what is still needed ({wanted})", str(src),
                   f"pass the file {ds.page} gives you")


def _place(src: Path, parts: list[Part], work: Path, state: dict, label: str) -> list[str]:
    """Unpack `src` once and place every part of `parts` whose layout it holds; returns their names."""
    tmp = work / f"unpack-{src.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    unpack(src, tmp, label)
    try:   # listed again for each part: placing one moves its files out of `tmp`
        done = [p.name for p in parts if _place_part(tmp, files_under(tmp), p, work, state, label)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done


def _place_part(tmp: Path, files: list[str], part: Part, work: Path, state: dict, label: str) -> bool:
    for layout in part.layouts:
        prefix = find_prefix(files, layout.anchor)
        if prefix is None:
            continue
        base = tmp / prefix
        rels = under(files, prefix, layout.keep)
        checks = check_layout(base, rels, layout)
        if checks.errors:
            raise fail("; ".join(checks.errors), label, "the file is not the release's; nothing of it was kept")
        move_into(base, rels, work / "staging" / layout.into, whole=not layout.keep)
        state["placed"][part.name] = {"from": state.get("fetched", {}).get(part.name, {}).get("source", label),
                                      "layout": layout.anchor, "prefix": prefix, "files": len(rels),
                                      "found": checks.found, "warnings": checks.warnings}
        _save_state(work, state)
        return True
    return False


def _anchors(part: Part) -> str:
    return " or ".join(lay.anchor if not lay.into else f"{lay.into}/{lay.anchor}" for lay in part.layouts)


# ----------------------------------------------------------------------------------- finishing
def _commit(ds: Dataset, work: Path, state: dict, final: Path, opts: DownloadOptions) -> Outcome:
    """Check the dataset-wide counts, write download.json and rename staging/ to the final folder."""
    staging = work / "staging"
    checks = _dataset_checks(staging, ds)
    if checks.errors:
        shutil.rmtree(work, ignore_errors=True)
        raise fail("; ".join(checks.errors), str(final), "the download was removed; rerun, or check the source")
    warnings = [w for p in state["placed"].values() for w in p["warnings"]] + checks.warnings
    _write_marker(staging, ds, state, checks, warnings, "downloaded")
    replaced = work / "replaced"
    shutil.rmtree(replaced, ignore_errors=True)
    if final.exists():                        # --force: the old folder goes once the new one is whole
        final.rename(replaced)
    staging.rename(final)
    shutil.rmtree(replaced, ignore_errors=True)
    if not opts.keep_archives:
        shutil.rmtree(work, ignore_errors=True)
        _remove_if_empty(opts.root / WORK)
    files = sum(p["files"] for p in state["placed"].values())
    got = sum(f.get("bytes", 0) for f in state.get("fetched", {}).values())
    return Outcome(ds.name, "complete", f"{len(state['placed'])} file(s), {human_bytes(got)} fetched, "
                   f"{files:,} files laid out in {final}", warnings, _next(ds, opts))


def _dataset_checks(folder: Path, ds: Dataset) -> Checks:
    checks = Checks()
    if ds.counts:
        files = files_under(folder)
        for count in ds.counts:
            check_count(folder, files, count, checks)
    return checks


def _write_marker(folder: Path, ds: Dataset, state: dict, checks: Checks, warnings: list[str], how: str) -> None:
    report = Report("download", {"dataset": ds.name, "folder": ds.folder})
    report.count("files", sum(p.get("files", 0) for p in state["placed"].values()))
    report.count("bytes_fetched", sum(f.get("bytes", 0) for f in state.get("fetched", {}).values()))
    report.extra.update({"complete": True, "how": how, "title": ds.title, "licence": ds.licence,
                         "fetched": state.get("fetched", {}), "placed": state["placed"],
                         "found": checks.found, "warnings": warnings,
                         "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    report.save(folder / MARKER)


def _adopt(ds: Dataset, final: Path, opts: DownloadOptions) -> Outcome:
    """A folder without download.json: accept it when every part is in place and the checks hold."""
    files_by_into: dict[str, list[str]] = {}
    state: dict = {"placed": {}}
    checks = _dataset_checks(final, ds)
    for part in ds.parts:
        entry = _part_in_place(final, part, files_by_into, checks)
        if entry is None:
            raise fail(f"exists but is not a complete {ds.title} (no {_anchors(part)})", str(final),
                       "move it aside and rerun, or pass --force to replace it")
        state["placed"][part.name] = entry
    if checks.errors:
        raise fail("; ".join(checks.errors), str(final), "move it aside and rerun to download it afresh")
    _write_marker(final, ds, state, checks, checks.warnings, "found in place")
    return Outcome(ds.name, "adopted", f"found in place in {final}; checked and marked complete",
                   checks.warnings, _next(ds, opts))


def _part_in_place(final: Path, part: Part, files_by_into: dict, checks: Checks) -> dict | None:
    for layout in part.layouts:
        base = final / layout.into
        files = files_by_into.setdefault(layout.into, files_under(base) if base.is_dir() else [])
        rels = under(files, "", layout.keep)
        if any(match(r, layout.anchor) for r in rels):
            found = check_layout(base, rels, layout)
            checks.errors += found.errors
            checks.warnings += found.warnings
            checks.found.update(found.found)
            return {"from": "found in place", "layout": layout.anchor, "files": len(rels)}
    return None


def _pending(ds: Dataset, missing: list[Part], state: dict, opts: DownloadOptions) -> Outcome:
    have = ", ".join(state["placed"]) or "nothing yet"
    lines = [f"needs a manual download ({'an account' if ds.access == 'account' else 'a request form'}): "
             f"{ds.request}", f"  where: {ds.page}",
             f"  then:  focus-data download {ds.name} --root {opts.root} --from FILE [--from FILE]",
             f"  still needed: {'; '.join(f'{p.name} (holding {_anchors(p)})' for p in missing)}; placed: {have}"]
    return Outcome(ds.name, "pending", "\n".join(lines))


def _next(ds: Dataset, opts: DownloadOptions) -> list[str]:
    lines = [cmd.format(root=opts.root) for cmd in ds.next]
    for need in ds.needs:
        folder = CATALOG[need].folder if need in CATALOG else need
        if not (opts.root / folder / MARKER).is_file():
            lines.insert(0, f"focus-data download {need} --root {opts.root}   # {ds.title} needs it too")
    return lines


def human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return ""


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
