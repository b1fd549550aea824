"""`--shard I/N`: split a list of work items across machines, deterministically."""
from __future__ import annotations

from typing import Sequence, TypeVar

from focusclip.core.errors import fail

T = TypeVar("T")


def parse_shard(text: str | None) -> tuple[int, int]:
    """'I/N' with 0 <= I < N → (I, N); None → (0, 1)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise fail(f"--shard '{text}' is not of the form I/N", None, "e.g. --shard 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise fail(f"--shard '{text}' needs 0 <= I < N", None, "e.g. --shard 0/4 … 3/4") from None
    return i, n


def take_shard(items: Sequence[T], shard: tuple[int, int]) -> list[T]:
    """Every N-th item starting at I (round-robin keeps shards balanced when items are sorted)."""
    i, n = shard
    return list(items[i::n])
