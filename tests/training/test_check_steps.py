"""`focus-train --check` runs the checks the run makes before its first step (three training images make
no batch of 16: one line at --check and at the run's start, before any work); `train.max_steps`
overrides `train.epochs`, as in the Hugging Face Trainer; a resumed run with nothing left says which
limit ended it. Through the console script."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO, console_script
from tests.training.fixtures import make_world, tiny_overrides

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _train(world: dict, out, *args, **sets) -> subprocess.CompletedProcess:
    overrides = tiny_overrides(world, out, **{"train.checkpoint_every": 0, "train.num_workers": 0, **sets})
    return subprocess.run([console_script("focus-train"), str(REPO / "configs/tiny-clip.yaml"),
                           *[a for s in overrides for a in ("--set", s)], *args],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("three"), n_train=3, n_val=2)


@pytest.mark.parametrize("check", [True, False])
def test_three_images_make_no_batch_of_16_at_check_and_at_start(three, tmp_path, check):
    r = _train(three, tmp_path / "run", *(["--check"] if check else []), **{"train.batch_size": 16})
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {three['descriptions']}: 3 training images make no full batch of 16 "
        "(lower train.batch_size (at most 3 here) or add data)")
    assert "ok:" not in r.stdout and "tower:" not in r.stderr            # nothing loaded first
    assert not (tmp_path / "run").exists()                              # nothing written


def test_check_says_what_the_run_will_take(three, tmp_path):
    r = _train(three, tmp_path / "run", "--check", **{"train.batch_size": 2, "train.max_steps": 3})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ok: ") and not (tmp_path / "run").exists()
    assert lines[-2:] == ["  data: 3 training images, 2 validation images",
                          "  steps: 1 per epoch of batch 2, 3 in all (ended by train.max_steps 3 (3 epochs))"]


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("eight"), n_train=8, n_val=2)


def test_max_steps_overrides_epochs(eight, tmp_path):
    """8 images, batch 8: one step per epoch; epochs 1 and max_steps 3 train 3 steps (3 epochs)."""
    r = _train(eight, tmp_path / "run", **{"train.batch_size": 8, "train.epochs": 1, "train.max_steps": 3})
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("trained 3 steps → ")


def test_a_resumed_run_says_epochs_ended_it_and_max_steps_trains_on(eight, tmp_path):
    sets = {"train.batch_size": 8, "train.epochs": 2}
    first = _train(eight, tmp_path / "run", **sets)
    assert first.returncode == 0 and first.stderr.strip().splitlines()[-1].startswith("trained 2 steps"), first.stderr
    again = _train(eight, tmp_path / "run", "--resume", "latest", **sets)
    assert again.returncode == 0, again.stderr
    assert ("note: nothing to train: the run ended by epochs: train.epochs 2 reached at step 2; raise "
            "train.epochs or set train.max_steps (it overrides epochs) to train on") in again.stderr.splitlines()
    more = _train(eight, tmp_path / "run", "--resume", "latest", **sets, **{"train.max_steps": 4})
    assert more.returncode == 0 and more.stderr.strip().splitlines()[-1].startswith("trained 4 steps"), more.stderr
    assert "nothing to train" not in more.stderr
