"""focus-train's output holds no third-party progress bars nobody asked for: datasets draws a "Generating
train split" bar per split of every published config at every training start (issue 31)."""
from __future__ import annotations

import json
import os
import subprocess

from focusclip.pipeline.publish.stage import PublishOptions, run_publish
from tests.conftest import REPO, console_script
from tests.training.fixtures import make_world, tiny_overrides


def test_training_from_a_published_folder_draws_no_datasets_bars(tmp_path):
    world = make_world(tmp_path / "w", n_train=16, n_val=8, describers=("template",))
    published = tmp_path / "published"
    run_publish(PublishOptions(world["annotations"], {"template": world["descriptions"] / "template.jsonl"},
                               published))
    sets = tiny_overrides(world, tmp_path / "run", **{"data.dataset": published, "train.max_steps": 1,
                                                       "train.batch_size": 8, "train.checkpoint_every": 0})
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_DATASETS_DISABLE_PROGRESS_BARS", None)
    done = subprocess.run([console_script("focus-train"), "configs/tiny-clip.yaml",
                           *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1]          # it read the folder and trained
    assert "Generating" not in done.stderr and "split:" not in done.stderr, done.stderr
