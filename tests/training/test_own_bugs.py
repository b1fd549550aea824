"""A bug in our own code that runs on a parsed checkpoint is a traceback and the "this is a bug in
focusclip" line, never the one-line "cannot read … (damaged input)" of `reading()`: only the library
calls that parse the user's files sit inside it."""
from __future__ import annotations

import os
import subprocess

import pytest

from focusclip.core.errors import REPORT_BUGS
from tests.conftest import console_script
from tests.eval import fixtures as fx
from tests.eval.tiny_models import save_tiny_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
# loaded by the console script's interpreter at start-up (a sitecustomize on PYTHONPATH)
BROKEN = '''
import focusclip.training.checkpoint as ck

def trained_resize(ckpt):      # our code reading the parsed train_config.yaml, with a bug
    raise KeyError("bug")

ck.trained_resize = trained_resize
'''


def test_a_bug_inside_load_checkpoint_is_a_traceback_through_focus_eval(tmp_path):
    save_tiny_checkpoint(tmp_path / "run")
    fx.write_utkface(tmp_path / "data")
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(BROKEN)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path / "inject"), ENV.get("PYTHONPATH", "")])}
    r = subprocess.run([console_script("focus-eval"), str(tmp_path / "run"), "--data-root", str(tmp_path / "data"),
                        "--task", "utkface-age", "-o", str(tmp_path / "r.json"), "--workers", "0"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert "Traceback (most recent call last):" in lines and "KeyError: 'bug'" in lines, r.stderr
    assert "in load_checkpoint" in r.stderr and "cannot read" not in r.stderr, r.stderr
    assert lines[-1] == f"error: unexpected KeyError: this is a bug in focusclip; {REPORT_BUGS}"
    assert not (tmp_path / "r.json").exists()


def test_a_bug_applying_the_resume_state_is_a_traceback(tmp_path, monkeypatch):
    """On `--resume`, our code that applies the parsed state (here the metric window) runs outside
    `reading()`: its KeyError comes out as itself, not as "cannot read the resume state"."""
    import torch

    from focusclip.training.config import load_config
    from focusclip.training.stats import StepStats
    from focusclip.training.trainer import run_train
    from tests.conftest import REPO
    from tests.training.fixtures import make_world, tiny_overrides

    torch.set_num_threads(1)
    world = make_world(tmp_path / "world", n_train=16, n_val=0, describers=("template",))
    sets = {"train.batch_size": 8, "train.checkpoint_every": 1}
    run_train(load_config(REPO / "configs/tiny-clip.yaml", tiny_overrides(world, tmp_path / "run", **sets,
                                                                           **{"train.max_steps": 1})))

    def load_state(self, state):
        raise KeyError("bug")

    monkeypatch.setattr(StepStats, "load_state", load_state)
    with pytest.raises(KeyError, match="bug"):
        run_train(load_config(REPO / "configs/tiny-clip.yaml", tiny_overrides(world, tmp_path / "run", **sets,
                                                                               **{"train.max_steps": 2})),
                  resume="latest")
