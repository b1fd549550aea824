"""One writer per run folder (issue 30): `focus-train` holds `<output_dir>.lock` for its whole run and
`focus-train prepare` holds `<data.prepared>.lock`; a second process on the same folder is refused at
once with one line naming the holder (focusclip.core.lock)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from focusclip.core.lock import lock_path
from tests.conftest import REPO, console_script
from tests.training.fixtures import make_world, tiny_overrides

CONFIG = str(REPO / "configs/tiny-focusclip.yaml")


def _sets(world: dict, run: Path, **extra) -> list[str]:
    return [x for s in tiny_overrides(world, run, **{"train.batch_size": 8, **extra}) for x in ("--set", s)]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _wait_for_a_step(proc: subprocess.Popen, metrics: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and '"loss"' in metrics.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"the first run did not reach a step: {proc.stderr.read().decode()[-2000:]}")


def test_a_second_focus_train_on_one_output_dir_is_refused_at_once_naming_the_first(tmp_path):
    world = make_world(tmp_path / "world", n_train=16, n_val=8)
    run = tmp_path / "run"
    first = subprocess.Popen([console_script("focus-train"), CONFIG, *_sets(world, run, **{"train.epochs": 10_000})],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(), start_new_session=True)
    try:
        _wait_for_a_step(first, run / "metrics.jsonl")
        holder = json.loads(lock_path(run).read_text())
        assert holder["pid"] == first.pid and "focus-train" in holder["command"]
        config = (run / "config.yaml").read_text()
        second = subprocess.run([console_script("focus-train"), CONFIG, *_sets(world, run), "--force"],
                                capture_output=True, text=True, timeout=300, env=_env())
        assert first.poll() is None                               # the first run goes on
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert second.returncode == 1, second.stderr
    assert second.stderr.count("\n") == 1, second.stderr           # one line: no tower loaded, nothing printed
    line = second.stderr.strip()
    assert line.startswith(f"error: {run}: is being written by pid {first.pid} on "), line
    assert "focus-train" in line and line.endswith("(wait for that run to finish or stop it: one process per "
                                                   "output_dir output)"), line
    assert (run / "config.yaml").read_text() == config          # --force deleted nothing of the first run's


HOLD = textwrap.dedent("""
    import sys, time
    from focusclip.core.lock import output_lock
    with output_lock(sys.argv[1], "data.prepared"):
        print("locked", flush=True)
        time.sleep(120)
""")


def test_focus_train_prepare_is_refused_while_another_prepares_the_folder(tmp_path):
    world = make_world(tmp_path / "world", n_train=16, n_val=8)
    prepared = tmp_path / "prepared"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(prepared)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = subprocess.run([console_script("focus-train"), "prepare", CONFIG,
                               *_sets(world, tmp_path / "run", **{"data.prepared": prepared})],
                              capture_output=True, text=True, timeout=300, env=_env())
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {prepared}: is being written by pid {holder.pid} on "), lines
    assert lines[0].endswith("(wait for that run to finish or stop it: one process per data.prepared output)"), lines
    assert not prepared.exists()                                  # nothing built
