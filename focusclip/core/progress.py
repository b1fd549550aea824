"""The progress bar every long stage shows: tqdm on stderr, redrawn a few times a second on a terminal
and every 30 seconds when stderr is a file or a pipe (a log then gets a line per 30 s, not a frame per
step). FOCUSCLIP_PROGRESS_INTERVAL=<seconds> overrides both (the demo sets it for the steps it runs
when its own stderr is a terminal, so their bars move there)."""
from __future__ import annotations

import os
import sys
from typing import Iterable

from tqdm import tqdm

TERMINAL_INTERVAL_S = 0.25
LOG_INTERVAL_S = 30.0
INTERVAL_ENV = "FOCUSCLIP_PROGRESS_INTERVAL"


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
             unit: str = "it", disable: bool | None = False, **kwargs) -> tqdm:
    """A tqdm bar; `disable=None` hides it when stderr is not a terminal, as tqdm does."""
    stream = kwargs.pop("file", sys.stderr)
    interactive = hasattr(stream, "isatty") and stream.isatty()
    interval = _interval_from_env() or (TERMINAL_INTERVAL_S if interactive else LOG_INTERVAL_S)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=stream,
                mininterval=interval, maxinterval=max(interval, 10.0), dynamic_ncols=True, **kwargs)


def _interval_from_env() -> float | None:
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return None
    return value if value > 0 else None
