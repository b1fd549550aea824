"""What a newcomer sees first: `--help`, `--version`, completion, command order, and a quiet log."""
from __future__ import annotations

import io
import re
import subprocess

import pytest

from focusclip import __version__
from tests.conftest import console_script

SCRIPTS = ("focus-data", "focus-train", "focus-eval")


@pytest.mark.parametrize("script", SCRIPTS)
def test_version_and_completion(script):
    r = subprocess.run([console_script(script), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"focusclip {__version__}", r.stdout + r.stderr
    r = subprocess.run([console_script(script), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--install-completion" in r.stdout and "--version" in r.stdout


@pytest.mark.parametrize("script, words", [("focus-train", "Train FocusCLIP or the CLIP baseline"),
                                           ("focus-eval", "Zero-shot evaluation")])
def test_single_command_apps_show_their_description(script, words):
    r = subprocess.run([console_script(script), "--help"], capture_output=True, text=True, timeout=60)
    assert words in " ".join(r.stdout.split()), r.stdout


def test_focus_data_lists_the_stages_in_pipeline_order():
    r = subprocess.run([console_script("focus-data"), "--help"], capture_output=True, text=True, timeout=60)
    listed = re.findall(r"^│ (\w+) ", r.stdout, flags=re.M)
    listed = [w for w in listed if w in ("download", "convert", "heatmaps", "describe", "filter", "publish",
                                         "synth", "frames", "demo")]
    assert listed == ["download", "convert", "heatmaps", "describe", "filter", "publish", "synth", "frames",
                      "demo"], r.stdout


def test_bad_device_is_a_usage_error_listing_the_choices(tmp_path):
    r = subprocess.run([console_script("focus-eval"), str(tmp_path), "--data-root", str(tmp_path),
                        "--device", "gpu"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert all(c in r.stderr for c in ("auto", "cpu", "cuda:N")), r.stderr


def test_progress_redraws_a_log_rarely_and_a_terminal_a_few_times_a_second():
    from focusclip.core.progress import LOG_INTERVAL_S, TERMINAL_INTERVAL_S, progress

    log = io.StringIO()   # not a terminal
    bar = progress(total=5000, desc="train", file=log)
    for _ in range(5000):
        bar.update(1)
        bar.set_postfix(loss="1.0", refresh=False)
    bar.close()
    frames = log.getvalue().count("\r")
    assert frames <= 3, f"{frames} redraws in a log for 5000 quick steps"
    assert TERMINAL_INTERVAL_S <= 0.5 and LOG_INTERVAL_S >= 10
