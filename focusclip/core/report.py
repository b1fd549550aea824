"""What a stage did, saved beside its output: counts, skips with reasons, timings and the resolved
options (docs/design.md §1)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from focusclip.core.io import write_json


def report_path_for(output: str | os.PathLike) -> Path:
    """`X.report.json` beside an output file `X.jsonl`; `DIR/report.json` for an output folder."""
    output = Path(output)
    if output.suffix in (".jsonl", ".json", ".parquet"):
        return output.with_suffix(".report.json")
    return output / "report.json"


class Report:
    """What a stage did: counts, skips with reasons, timings and the resolved options (docs/design.md §1)."""

    def __init__(self, stage: str, options: dict | None = None):
        self.stage = stage
        self.options = dict(options or {})
        self.counts: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.timings: dict[str, float] = {}
        self.extra: dict[str, Any] = {}
        self._t0 = time.perf_counter()

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def skip(self, reason: str, item: str | None = None, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n
        if item is not None:
            ex = self.examples.setdefault(reason, [])
            if len(ex) < 10:
                ex.append(item)

    def time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def to_dict(self) -> dict:
        timings = dict(self.timings)
        timings.setdefault("total_s", round(time.perf_counter() - self._t0, 3))
        return {"stage": self.stage, "counts": self.counts, "skipped": self.skipped,
                "skipped_examples": self.examples, "timings": timings,
                "options": self.options, **self.extra}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        write_json(path, self.to_dict())
        return path
