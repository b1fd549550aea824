"""The demo's two trainings side by side: real subprocesses (a stand-in console script on PATH) that
overlap in time, each capped to its share of the cores, each with its own log and progress bar."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from focusclip.core.progress import INTERVAL_ENV, LOG_INTERVAL_S, progress
from focusclip.pipeline.demo.layout import Layout, Outcome, Step
from focusclip.pipeline.demo import stage
from focusclip.pipeline.demo.stage import SubprocessRunner, run_together

# Stands in for focus-train: a tqdm-shaped bar on stderr, then its start/end times and thread cap
# in its done file after a pause long enough that two sequential runs could not overlap.
SCRIPT = f"""#!{sys.executable}
import json, os, sys, time
if sys.argv[-1] == "--help":
    print("Usage: fake-train DONE"); sys.exit(0)
if sys.argv[-1].endswith("/fail.json"):
    print("fake:  50%|     | 5/10 [00:01<00:01, 5.0step/s]", end="\\r", file=sys.stderr)
    print("error: data.images: no such folder (fix the path)", file=sys.stderr)
    sys.exit(1)
t0 = time.time()
print("Generating train split: 100%|#| 4776/4776 [00:00<00:00, 35209 examples/s]", file=sys.stderr)
for i in (0, 5, 10):
    print(f"fake:  {{i * 10}}%|     | {{i}}/10 [00:01<00:01, 5.0step/s]", end="\\r", file=sys.stderr, flush=True)
    time.sleep(0.4)
with open(sys.argv[-1], "w") as f:
    json.dump({{"start": t0, "end": time.time(), "omp": os.environ.get("OMP_NUM_THREADS")}}, f)
print("trained")
"""


def _fake_train(tmp_path: Path, monkeypatch) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "fake-train"
    exe.write_text(SCRIPT)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return "fake-train"


def _plans(tmp_path: Path, script: str) -> dict[str, Step]:
    return {n: Step(script, (str(tmp_path / f"{n}.json"),), tmp_path / f"{n}.json", f"train {n}")
            for n in ("train-clip", "train-focusclip")}


def test_two_steps_overlap_with_half_the_cores_each(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    plans = _plans(tmp_path, _fake_train(tmp_path, monkeypatch))
    lines: list[str] = []
    bars = []
    monkeypatch.setattr(stage, "progress", lambda **k: bars.append(progress(**k)) or bars[-1])
    outcomes = run_together(plans, Layout(tmp_path / "demo"), SubprocessRunner(stream_stderr=False), lines.append)
    assert {n: o.status for n, o in outcomes.items()} == {"train-clip": "ran", "train-focusclip": "ran"}
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in plans)
    assert a["start"] < b["end"] and b["start"] < a["end"]          # side by side, not one after the other
    assert a["omp"] == b["omp"] == "2"                               # 4 cores / 2 runs
    for n in plans:                                                  # each its own log, bar frames included
        log = (tmp_path / "demo" / "logs" / f"{n}.log").read_text()
        assert "10/10 [" in log and "trained" in log
    assert sum("beside the other" in line for line in lines) == 2
    assert [(b.desc, b.n, b.total) for b in bars] == [("train-clip", 10, 10), ("train-focusclip", 10, 10)]


def test_one_step_done_already_means_none_run_together(tmp_path, monkeypatch):
    plans = _plans(tmp_path, _fake_train(tmp_path, monkeypatch))
    (tmp_path / "train-clip.json").write_text("{}")
    assert run_together(plans, Layout(tmp_path / "demo"), SubprocessRunner(stream_stderr=False), print) == {}
    waiting = {"train-clip": plans["train-clip"], "train-focusclip": Outcome("train-focusclip", "waiting")}
    (tmp_path / "train-clip.json").unlink()
    assert run_together(waiting, Layout(tmp_path / "demo"), SubprocessRunner(stream_stderr=False), print) == {}


def test_one_core_runs_them_one_by_one(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    plans = _plans(tmp_path, _fake_train(tmp_path, monkeypatch))
    assert run_together(plans, Layout(tmp_path / "demo"), SubprocessRunner(stream_stderr=False), print) == {}
    assert not any((tmp_path / f"{n}.json").exists() for n in plans)


def test_progress_interval_env(monkeypatch, tmp_path):
    with open(tmp_path / "bar.log", "w") as log:          # a file: the 30-second default
        monkeypatch.delenv(INTERVAL_ENV, raising=False)
        assert progress(total=3, file=log).mininterval == LOG_INTERVAL_S
        monkeypatch.setenv(INTERVAL_ENV, "0.5")
        assert progress(total=3, file=log).mininterval == 0.5
        monkeypatch.setenv(INTERVAL_ENV, "soon")
        assert progress(total=3, file=log).mininterval == LOG_INTERVAL_S


def test_a_failing_step_says_its_error_line(tmp_path, monkeypatch):
    script = _fake_train(tmp_path, monkeypatch)
    plans = _plans(tmp_path, script)
    plans["train-focusclip"] = Step(script, (str(tmp_path / "fail.json"),), tmp_path / "fail.json", "train it")
    lines: list[str] = []
    outcomes = run_together(plans, Layout(tmp_path / "demo"), SubprocessRunner(stream_stderr=False), lines.append)
    assert outcomes["train-clip"].status == "ran" and outcomes["train-focusclip"].status == "failed"
    assert "    train-focusclip: error: data.images: no such folder (fix the path)" in lines
    assert not any("5/10" in line for line in lines)
