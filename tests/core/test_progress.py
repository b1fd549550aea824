"""Progress bars in logs: a line per redraw when stderr is a file or a pipe (tqdm's carriage-return
frames made one log line of thousands of characters), in place on a terminal or when asked to
(FOCUSCLIP_PROGRESS_REDRAW=1, which the demo sets for the steps it shows on its terminal)."""
from __future__ import annotations

import os
import subprocess

from tests.conftest import console_script


def _synth(tmp_path, **env) -> subprocess.CompletedProcess:
    """focus-data synth with its stderr to a file, its bar redrawn every millisecond."""
    log = tmp_path / "stderr.log"
    with open(log, "w") as f:
        done = subprocess.run([console_script("focus-data"), "synth", "-o", str(tmp_path / "w"), "--n-train", "60",
                               "--n-eval", "7", "--workers", "1"], stdout=subprocess.DEVNULL, stderr=f, timeout=120,
                              env={**os.environ, "FOCUSCLIP_PROGRESS_INTERVAL": "0.001", **env})
    done.stderr = log.read_bytes().decode("utf-8")     # not read_text: it would turn \r into \n
    return done


def test_a_bar_into_a_file_is_a_line_per_redraw(tmp_path):
    done = _synth(tmp_path)
    assert done.returncode == 0, done.stderr
    frames = [ln for ln in done.stderr.splitlines() if ln.startswith("synth:") and "img/s" in ln]
    assert "\r" not in done.stderr and len(frames) >= 2, done.stderr
    assert frames[-1].startswith("synth: 100%") and max(map(len, done.stderr.splitlines())) < 200
    assert frames == [f.rstrip() for f in frames]          # tqdm's padding spaces are cut


def test_redraw_in_place_when_asked(tmp_path):
    done = _synth(tmp_path, FOCUSCLIP_PROGRESS_REDRAW="1")
    assert done.returncode == 0 and done.stderr.count("\rsynth:") >= 2, done.stderr
