"""The filter's input side: description records (last per key wins) and regeneration rounds via describe."""
from __future__ import annotations

import json
import os
from pathlib import Path

from focusclip.core.errors import fail
from focusclip.core.io import read_jsonl
from focusclip.core.report import Report
from focusclip.data.records import Annotation, looks_like_annotation, not_descriptions

Key = tuple[str, str, str]
REQUIRED = ("image", "describer", "prompt_sha")
TORN = "torn last line (ignored)"
# describe options the filter sets itself, per round
_OWN_OPTIONS = {"annotations", "output", "redo_images", "round", "force"}
# Never written into a report (the environment holds secrets; an option might too)
_SECRET_HINTS = ("key", "token", "secret", "password")


def _torn_tail(path: Path) -> bool:
    """True when the file ends in a partial line that is not JSON (a crash mid-write)."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    tail = data[data.rfind(b"\n") + 1:]
    try:
        json.loads(tail.decode("utf-8", errors="replace"))
        return False
    except json.JSONDecodeError:
        return True


def _malformed(row: dict) -> str | None:
    missing = [k for k in REQUIRED if not isinstance(row.get(k), str) or not row.get(k)]
    return f"record without {', '.join(missing)}" if missing else None


def read_latest_descriptions(path: str | os.PathLike, report: Report) -> dict[Key, dict]:
    """The last record per (image, describer, prompt_sha) key, as raw dicts (extra fields kept) —
    the reading of `describe.stage.latest_descriptions`, but a torn last line and records
    missing a key field are counted skips instead of errors. A keyed record with no usable
    description (missing, not text) is kept here: the `empty` check rejects it with its reason,
    and `--regenerate` asks for that image again."""
    path = Path(path)
    if path.is_file() and _torn_tail(path):
        report.skip(TORN, str(path))
    out: dict[Key, dict] = {}
    rows = read_jsonl(path)  # a bad line before the last is a user error naming the line
    if rows and looks_like_annotation(rows[0]):
        raise not_descriptions(path)
    report.count("records_read", len(rows))
    for i, row in enumerate(rows):
        why = _malformed(row)
        if why:
            report.skip(why, f"line {i + 1}")
            continue
        out[(row["image"], row["describer"], row["prompt_sha"])] = row
    report.count("superseded", len(rows) - len(out) - sum(1 for r in rows if _malformed(r)))
    return out


def safe_options(options: dict) -> dict:
    """The describe options as the report may show them: no secrets, no objects."""
    out = {}
    for k, v in options.items():
        if any(h in k.lower() for h in _SECRET_HINTS):
            out[k] = "<hidden>"
        elif isinstance(v, (str, int, float, bool, type(None))):
            out[k] = v
        else:
            out[k] = type(v).__name__
    return out


def regenerate_option_names() -> frozenset[str]:
    """The describe options a regeneration round takes (`DescribeOptions.from_flat`'s names, less those
    the filter sets itself), and the `backend_obj` hook of `run_describe`."""
    from focusclip.pipeline.describe.stage import OPTION_NAMES

    return OPTION_NAMES - _OWN_OPTIONS | {"backend_obj"}


def check_describe_options(options: dict) -> None:
    """Unknown or filter-owned keys are a user error before any work is done."""
    known = regenerate_option_names()
    for k in options:
        if k not in known:
            raise fail(f"unknown describe option '{k}'", "describe_options",
                       f"use some of: {', '.join(sorted(known))}")


def regenerate_round(descriptions: Path, annotations: dict[str, Annotation], latest: dict[Key, dict],
                     redo: dict[tuple[str, str, str], set[str]], round_: int, options: dict,
                     report: Report) -> list[dict]:
    """Ask describe again for the rejected images, grouped by (describer, backend, prompt_id) of their
    records so the new records land under the same key; returns the records that are new since
    `latest` (and updates `latest`). Options the caller leaves out default to the records' own."""
    from focusclip.pipeline.describe.stage import DescribeOptions, run_describe

    options = dict(options)
    backend_obj = options.pop("backend_obj", None)
    for (describer, backend, prompt_id), images in sorted(redo.items()):
        anns = [annotations[i] for i in sorted(images) if i in annotations]
        if not anns:
            continue
        opts = DescribeOptions.from_flat(**{"backend": backend, "describer": describer, "prompt_id": prompt_id,
                                            **options}, annotations=None, output=descriptions,
                                         redo_images=frozenset(images), round=round_)
        # lock=False: the filter holds the descriptions file's lock for all its rounds
        sub = run_describe(opts, records=anns, backend_obj=backend_obj, progress=False, lock=False)
        report.count(f"regenerate.round{round_}.asked", sub.counts.get("asked", 0))
        report.count(f"regenerate.round{round_}.failed", sub.counts.get("failed", 0))
    after = read_latest_descriptions(descriptions, Report("filter-reread"))
    new = [rec for key, rec in after.items() if latest.get(key) != rec]
    latest.clear()
    latest.update(after)
    return new
