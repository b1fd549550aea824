"""JSONL crash safety (a torn last line is dropped, then repaired) and atomic writes."""
from __future__ import annotations

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.io import JsonlAppender, atomic_path, read_jsonl, repair_jsonl_tail


def test_torn_tail_is_dropped_then_repaired(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    with JsonlAppender(path) as w:
        assert w.repaired
        w.write({"a": 4})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 4}]
    assert not repair_jsonl_tail(path)


def test_bad_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(FocusError, match="line 2"):
        read_jsonl(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
