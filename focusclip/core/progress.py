"""The progress bar every long stage shows: tqdm on stderr, redrawn in place a few times a second on a
terminal, and every 30 seconds as a line of its own when stderr is a file or a pipe (a log then gets a
line per 30 s: neither a frame per step nor one line of carriage-return frames thousands of characters
long). FOCUSCLIP_PROGRESS_INTERVAL=<seconds> overrides both intervals; FOCUSCLIP_PROGRESS_REDRAW=1 draws
in place on a pipe too. The demo sets both for the steps it runs when its own stderr is a terminal, so
their bars move there; it writes their logs a line per redraw itself."""
from __future__ import annotations

import os
import re
import sys
from typing import Iterable, TextIO

from tqdm import tqdm

TERMINAL_INTERVAL_S = 0.25
LOG_INTERVAL_S = 30.0
INTERVAL_ENV = "FOCUSCLIP_PROGRESS_INTERVAL"
REDRAW_ENV = "FOCUSCLIP_PROGRESS_REDRAW"
_FRAME_END = re.compile(r"(\r|\n)")
_CURSOR_UP = "\x1b[A"   # tqdm moves up to redraw a bar at position > 0


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
             unit: str = "it", disable: bool | None = False, **kwargs) -> tqdm:
    """A tqdm bar; `disable=None` hides it when stderr is not a terminal, as tqdm does."""
    stream = kwargs.pop("file", sys.stderr)
    interactive = hasattr(stream, "isatty") and stream.isatty()
    interval = _interval_from_env() or (TERMINAL_INTERVAL_S if interactive else LOG_INTERVAL_S)
    if not interactive and os.environ.get(REDRAW_ENV) != "1":
        stream = LineStream(stream)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=stream,
                mininterval=interval, maxinterval=max(interval, 10.0), dynamic_ncols=True, **kwargs)


class LineStream:
    """A file or pipe as tqdm's output, each redraw on a line of its own. tqdm starts every frame with a
    carriage return, which a terminal draws in place and a log keeps: a long run's bar became one line of
    thousands of characters. Each frame is written with its padding spaces cut and a newline; anything
    else tqdm asks of a stream (isatty, encoding, flush) is the wrapped stream's."""

    def __init__(self, stream: TextIO):
        self.stream, self._mid_line = stream, False

    def write(self, text: str) -> int:
        for piece in _FRAME_END.split(text.replace(_CURSOR_UP, "")):
            if piece in ("\r", "\n"):
                if self._mid_line:
                    self.stream.write("\n")
                    self._mid_line = False
            elif piece.strip():
                self.stream.write(piece.rstrip(" "))
                self._mid_line = True
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _interval_from_env() -> float | None:
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return None
    return value if value > 0 else None
