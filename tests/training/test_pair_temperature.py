"""`loss.temperature_per_pair`: one learnt τ per loss pair (image–text, masked–image, masked–text).
A tiny FocusCLIP trains with three τ that move apart, metrics.jsonl logs each (the image–text one as
`temperature`, as every run logs it), and the checkpoint reloads with the three values it ended at; a
CLIP run logs only its one pair's; a per-pair τ that is not learnt is a one-line config error."""
from __future__ import annotations

import json

import pytest
import torch

from focusclip.core.errors import FocusError
from focusclip.training.config import check_config, load_config
from focusclip.training.loss import PAIRS
from focusclip.training.model import FocusCLIPModel
from focusclip.training.trainer import run_train
from tests.conftest import REPO
from tests.training.fixtures import make_world, tiny_overrides

PER_PAIR = {"loss.learn_temperature": "true", "loss.temperature_per_pair": "true", "loss.temperature": 0.2,
            "train.max_steps": 6, "train.batch_size": 8, "train.checkpoint_every": 0, "optim.lr": 0.03,
            "optim.warmup_steps": 0}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("pair_tau") / "world", n_train=16, n_val=8)


def _rows(run) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_each_pair_learns_its_own_temperature_and_the_checkpoint_keeps_all_three(world, tmp_path):
    torch.set_num_threads(1)
    run_train(load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, tmp_path / "run", **PER_PAIR)))
    rows = _rows(tmp_path / "run")
    keys = ("temperature", "temperature_masked_image", "temperature_masked_text")
    assert list(rows[-1])[-4:] == ["alpha", *keys]
    last = [rows[-1][k] for k in keys]
    assert all(abs(t - 0.2) > 1e-4 for t in last)                          # all three learnt
    assert len(set(last)) == 3 and abs(last[1] - last[0]) > 1e-3          # … each its own way (Adam moves
                                                                            # all by ~lr a step, each by its sign)
    model = FocusCLIPModel.from_pretrained(tmp_path / "run" / "checkpoints" / "last")
    assert model.config.temperature_per_pair and model.log_temperature.shape == (len(PAIRS),)
    torch.testing.assert_close(model.temperatures, torch.tensor(last), rtol=1e-5, atol=0)
    assert model.config.contrastive_temperature == pytest.approx(last[0], rel=1e-6)   # the image–text τ


def test_a_clip_run_with_a_temperature_per_pair_logs_only_the_image_text_one(world, tmp_path):
    torch.set_num_threads(1)
    run_train(load_config(REPO / "configs/tiny-clip.yaml", tiny_overrides(world, tmp_path / "run", **PER_PAIR)))
    row = _rows(tmp_path / "run")[-1]
    assert "temperature" in row and not any(k.startswith("temperature_") for k in row)
    assert abs(row["temperature"] - 0.2) > 1e-4


def test_a_shared_temperature_logs_no_pair_columns(world, tmp_path):
    torch.set_num_threads(1)
    sets = {**PER_PAIR, "loss.temperature_per_pair": "false"}
    run_train(load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, tmp_path / "run", **sets)))
    assert list(_rows(tmp_path / "run")[-1])[-2:] == ["alpha", "temperature"]
    model = FocusCLIPModel.from_pretrained(tmp_path / "run" / "checkpoints" / "last")
    assert model.log_temperature.shape == ()


def test_a_temperature_per_pair_that_is_not_learnt_is_a_config_error(world, tmp_path):
    sets = {**PER_PAIR, "loss.learn_temperature": "false"}
    cfg = load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, tmp_path / "run", **sets))
    with pytest.raises(FocusError, match="loss.temperature_per_pair needs loss.learn_temperature: true"):
        check_config(cfg)
