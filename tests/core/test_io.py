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


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    """ENOSPC from a write carries no file name; the writers add theirs, so the one line says where."""
    import errno

    from focusclip.core.errors import user_message
    from focusclip.core.io import write_json

    def full(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "o.jsonl"
    with JsonlAppender(out) as app:
        app.write({"a": 1})
        monkeypatch.setattr(app._f, "write", full)
        with pytest.raises(OSError) as e:
            app.write({"a": 2})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out)
    assert str(out) in user_message(e.value)
    monkeypatch.setattr("pathlib.Path.write_text", full)
    with pytest.raises(OSError) as e:
        write_json(tmp_path / "r.json", {"x": 1})
    assert e.value.filename == str(tmp_path / "r.json")
    assert not list(tmp_path.glob(".r.json.*"))          # no temporary file left behind
