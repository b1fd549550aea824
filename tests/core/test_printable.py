"""Untrusted text reaches the terminal escaped (issue 30): a path, a file's contents or a server's reply
in an error line (or in a bug's traceback) cannot retitle, recolour or clear the user's terminal."""
from __future__ import annotations

import errno
import re

import pytest

from focusclip.core.errors import FocusError, printable, run_cli
from focusclip.core.hub_repo import scrub

HOSTILE = "\x1b]0;pwned\x07\x1b[2J"                   # OSC: set the window title; CSI: clear the screen
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J"
# what a terminal acts on: C0 controls, DEL, C1 controls (\x9b is CSI on its own)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def test_printable_escapes_c0_del_and_c1_and_keeps_the_rest():
    assert printable(f"a {HOSTILE} b") == f"a {SHOWN} b"
    assert printable("tab\there\nnext\rback\x08\x7f\x85\x9b2J") == "tab\\there\\nnext\\rback\\x08\\x7f\\x85\\x9b2J"
    assert printable("ordinary text: café ✓ 名前 (\\ kept)") == "ordinary text: café ✓ 名前 (\\ kept)"
    assert printable(printable(HOSTILE)) == printable(HOSTILE)       # escaping twice changes nothing


def _stderr(app, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        run_cli(app)
    assert e.value.code == 1
    return capsys.readouterr().err


@pytest.mark.parametrize("exc", [FocusError(f"server said: {HOSTILE}\x9b31m"),
                                 OSError(errno.ENOENT, "No such file or directory", f"images/{HOSTILE}.jpg")])
def test_a_user_error_line_shows_control_characters_escaped(exc, capsys):
    def app():
        raise exc
    err = _stderr(app, capsys)
    assert CONTROL.findall(err) == ["\n"] and SHOWN in err, repr(err)   # one line, its newline the only control


def test_a_newline_in_a_message_keeps_it_one_line(capsys):
    def app():
        raise FocusError("first\nerror: a second line the server wrote\r\n")
    assert _stderr(app, capsys) == "error: first error: a second line the server wrote\n"


def test_a_bugs_traceback_is_escaped_too(capsys):
    def app():
        return {}[HOSTILE]       # a KeyError quoting text from a file
    err = _stderr(app, capsys)
    assert "Traceback (most recent call last):" in err and f"KeyError: '{SHOWN}'" in err
    assert set(CONTROL.findall(err)) == {"\n"}, repr(err)


def test_scrub_hides_the_token_and_escapes_the_servers_text():
    assert scrub(f"403 Forbidden\n\nbad token hf_SECRET {HOSTILE}", "hf_SECRET") == f"403 Forbidden bad token *** {SHOWN}"
