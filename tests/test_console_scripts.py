"""Every console script answers --help and focus-data's lists the stages (tests/test_cli.py checks
the help's content and order in more detail)."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import console_script


@pytest.mark.parametrize("script", ["focus-data", "focus-train", "focus-eval"])
def test_console_scripts_have_help(script):
    out = subprocess.run([console_script(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage" in out.stdout


def test_focus_data_help_lists_the_stages():
    out = subprocess.run([console_script("focus-data"), "--help"], capture_output=True, text=True).stdout
    for stage in ("convert", "heatmaps", "describe", "filter", "publish"):
        assert stage in out
