"""A demo step's log through the real console script: it opens with the step's own command (not the
stub probe's --help) and holds a line per progress redraw, even when the child drew its bar in place
for the demo's terminal."""
from __future__ import annotations

import sys
from pathlib import Path

from focusclip.pipeline.demo.layout import Layout, Step
from focusclip.pipeline.demo.stage import SubprocessRunner, run_step


def test_step_log_is_the_command_and_a_line_per_redraw(tmp_path, monkeypatch):
    # as the demo runs a step it shows on its terminal: redraw in place, once a millisecond
    monkeypatch.setenv("FOCUSCLIP_PROGRESS_REDRAW", "1")
    monkeypatch.setenv("FOCUSCLIP_PROGRESS_INTERVAL", "0.001")
    lay = Layout(tmp_path / "demo")
    world = tmp_path / "world"
    step = Step("focus-data", ("synth", "-o", str(world), "--n-train", "60", "--n-eval", "7", "--workers", "1"),
                world / "report.json", "a small world")
    outcome = run_step("synth", step, SubprocessRunner(stream_stderr=False), lay, lambda s: None)
    assert outcome.status == "ran", outcome
    raw = (lay.logs / "synth.log").read_bytes()
    lines = raw.decode("utf-8").split("\n")
    exe = Path(sys.executable).parent / "focus-data"
    assert lines[0] == f"$ {exe} synth -o {world} --n-train 60 --n-eval 7 --workers 1"
    assert b"--help" not in raw and b"Usage:" not in raw
    frames = [ln for ln in lines if ln.startswith("synth:") and "img/s" in ln]
    assert b"\r" not in raw and len(frames) >= 2 and max(map(len, lines)) < 300
    assert any(ln.startswith("synth: wrote 60 images") for ln in lines)
