"""`focus-data synth`'s own errors through the console script: the project's one `error: <where>: <what>
(<fix>)` line naming the option, exit 1, never a traceback (a negative --seed was numpy's ValueError)."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import console_script


@pytest.mark.parametrize("args, line", [
    (["--seed", "-1"], "error: --seed: must be at least 0, got -1 (pass --seed 0 or more)"),
    (["--n-train", "0"], "error: --n-train: must be at least 1, got 0 (pass --n-train 1 or more)"),
    (["--n-eval", "-3"], "error: --n-eval: must be at least 0, got -3 (pass --n-eval 0 or more)"),
    (["--clutter", "-0.5"], "error: --clutter: must be at least 0, got -0.5 (pass --clutter 0 or more)"),
])
def test_a_bad_value_is_one_error_line_naming_the_option(tmp_path, args, line):
    done = subprocess.run([console_script("focus-data"), "synth", "-o", str(tmp_path / "w"), *args],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr.splitlines()) == (1, [line]), done.stderr
    assert not (tmp_path / "w").exists()      # checked before anything is written
