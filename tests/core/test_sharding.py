"""`--shard i/n`: the shards partition the work; a malformed shard is a user error."""
from __future__ import annotations

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.sharding import parse_shard, take_shard


def test_shards_partition_the_work():
    items = list(range(10))
    parts = [take_shard(items, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(sum(parts, [])) == items
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(FocusError):
            parse_shard(bad)


def test_round_robin_shards_and_the_default():
    # every N-th item from I, so a sorted list gives shards of sizes differing by at most one
    assert [take_shard("abcdefg", parse_shard(f"{i}/3")) for i in range(3)] == [
        ["a", "d", "g"], ["b", "e"], ["c", "f"]]
    assert parse_shard(None) == parse_shard("") == (0, 1) and parse_shard("2/5") == (2, 5)
    assert take_shard([1, 2, 3], (0, 1)) == [1, 2, 3]


@pytest.mark.parametrize("bad, message", [("x", "is not of the form I/N"), ("1/2/3", "is not of the form I/N"),
                                          ("3/3", "needs 0 <= I < N"), ("-1/3", "needs 0 <= I < N"),
                                          ("1/0", "needs 0 <= I < N")])
def test_a_malformed_shard_names_itself_and_the_fix(bad, message):
    with pytest.raises(FocusError, match=f"--shard '{bad}' {message} \\(e.g. --shard 0/4"):
        parse_shard(bad)
