"""`run_cli` (the one place errors become a line), `reading` and the output checks of `preflight`."""
from __future__ import annotations

import errno
import json
import os

import pytest

from focusclip.core.errors import FocusError, reading, run_cli
from focusclip.core.preflight import writable_dir, writable_file


def _exit(app, capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as e:
        run_cli(app)
    return e.value.code, capsys.readouterr().err.strip().split("\n")


@pytest.mark.parametrize("exc, line", [
    (FocusError("a.jsonl: not valid JSON\n  (fix it)"), "error: a.jsonl: not valid JSON (fix it)"),
    (PermissionError(errno.EACCES, "Permission denied", "/data/out"),
     "error: /data/out: permission denied (choose a path you may write (and read), or change its permissions)"),
    (FileExistsError(errno.EEXIST, "File exists", "out"),
     "error: out: already exists and is not a folder (remove it or choose another path)"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "f/x"),
     "error: f/x: a part of this path is a file, not a folder (pass a path whose parents are folders)"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "d"), "error: d: is a folder, not a file (pass a file path)"),
    (OSError(errno.ENOSPC, "No space left on device", "big.parquet"),
     "error: big.parquet: no space left on the device (free some space or choose an output on another disk)"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"),
     "error: a → b: Invalid cross-device link (check the path and the disk)"),
])
def test_user_errors_are_one_line_and_exit_1(exc, line, capsys):
    def app():
        raise exc
    code, lines = _exit(app, capsys)
    assert code == 1 and lines == [line]


def test_a_wrong_encoding_names_itself(capsys):
    def app():
        b"caf\xe9".decode("utf-8")
    code, lines = _exit(app, capsys)
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: a file is not UTF-8 text")


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(capsys):
    def app():
        return {}["missing"]   # a KeyError from our own code is a bug, not the user's input
    code, lines = _exit(app, capsys)
    assert code == 1 and lines[0] == "Traceback (most recent call last):" and "KeyError: 'missing'" in lines
    assert lines[-1] == ("error: unexpected KeyError: this is a bug in focusclip; please report it, with the "
                         "command and the traceback above, on the focusclip issue tracker")


def test_interrupt_and_typer_exits_pass(capsys):
    def interrupted():
        raise KeyboardInterrupt
    assert _exit(interrupted, capsys)[0] == 130

    def done():
        raise SystemExit(0)
    assert _exit(done, capsys) == (0, [""])


def test_reading_names_the_file_and_lets_bugs_through(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"image_size": ')
    with pytest.raises(FocusError, match=r"config.json: cannot read the checkpoint \(JSONDecodeError: Expecting "
                                         r"value: line 1 column 16 \(char 15\)\) \(save it again\)"):
        with reading(bad, "the checkpoint", "save it again"):
            json.loads(bad.read_text())
    with pytest.raises(AttributeError):      # not a file problem: our bug, shown as one
        with reading(bad, "the checkpoint", "save it again"):
            None.shape


def test_writable_file_and_dir_catch_what_the_write_would_hit(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FocusError, match=r"afile is a file, not a folder"):
        writable_file(afile / "sub" / "out.jsonl")
    with pytest.raises(FocusError, match=r"is a folder, not a file"):
        writable_file(tmp_path)
    with pytest.raises(FocusError, match=r"afile: exists and is not a folder"):
        writable_dir(afile)
    assert writable_file(tmp_path / "new" / "deep" / "out.jsonl") == tmp_path / "new" / "deep" / "out.jsonl"
    assert writable_dir(tmp_path / "new" / "run").name == "run"
    assert sorted(os.listdir(tmp_path)) == ["afile"]   # nothing created, no probe left behind
    if os.geteuid() != 0:                              # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(FocusError, match="permission denied"):
            writable_dir(ro)
