"""One writer per output: a second process is refused at once, naming the holder; a killed holder
frees the output; nothing is left behind (focusclip.core.lock)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.lock import _holder, lock_path, output_lock

HOLD = textwrap.dedent("""
    import sys, time
    from focusclip.core.lock import output_lock
    with output_lock(sys.argv[1], "-o"):
        print("locked", flush=True)
        time.sleep(60)
""")


def _holding(output) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(output), "--marker-arg"], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_frees_it(tmp_path):
    out = tmp_path / "descriptions" / "t.jsonl"
    holder = _holding(out)
    try:
        assert lock_path(out) == tmp_path / "descriptions" / "t.jsonl.lock"
        with pytest.raises(FocusError) as e:
            with output_lock(out):
                pytest.fail("entered a held lock")
        msg = str(e.value)
        assert f"pid {holder.pid}" in msg and "--marker-arg" in msg and str(out) in msg
        assert "one process per -o output" in msg
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(out).exists()          # SIGKILL left the file, but not the lock
    with output_lock(out) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not lock_path(out).exists()      # a clean exit removes it


def test_the_lock_is_reentrant_across_outputs_and_leaves_no_folders(tmp_path):
    a, b = tmp_path / "x" / "y" / "a.jsonl", tmp_path / "x" / "b"
    with output_lock(a), output_lock(b):
        assert lock_path(a).is_file() and lock_path(b).is_file()
    assert not (tmp_path / "x").exists()    # the folders made for the lock files are gone again


def test_a_refused_run_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "o" / "t.jsonl"
    holder = _holding(out)
    try:
        before = sorted(p.name for p in (tmp_path / "o").iterdir())
        with pytest.raises(FocusError):
            with output_lock(out):
                pass
        assert sorted(p.name for p in (tmp_path / "o").iterdir()) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_holder_line_is_parsed_defensively_and_escaped(tmp_path):
    f = tmp_path / "x.lock"
    f.write_text(json.dumps({"pid": 7, "host": "h\x1b[2J", "since": "now", "command": "focus-data \x1b]0;x\x07"}))
    line = _holder(f)
    assert "\x1b" not in line and "\x07" not in line and line.startswith("pid 7 on 'h\\x1b[2J'")
    f.write_text("[" * 100_000)
    assert _holder(f) == "another process"
