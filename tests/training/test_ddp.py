"""Two gloo processes on the CPU train exactly like one process on the same global batch: each rank
scores its own rows against the embeddings gathered from both (negatives span both ranks), and the
DDP-averaged gradient is the full-batch gradient — for the learnable temperature too (one step's
loss and gradients on random features: test_ddp_loss.py). The two ranks read a prepared set they
built together (each its share of the shards), the one process decodes the files: the same samples
either way."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tests.training.ddp_worker import train_rank
from tests.training.fixtures import make_world, tiny_overrides
from focusclip.training.config import load_config
from focusclip.training.trainer import run_train

CONFIG = "configs/tiny-focusclip.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    torch.set_num_threads(1)
    world = make_world(tmp_path / "world", n_train=48, n_val=8)
    # plain SGD without clipping: a wrong gradient scale would show in the grad norm and the weights
    extra = {"train.batch_size": 16, "train.max_steps": 4, "train.checkpoint_every": 0,
             "optim.name": "sgd", "optim.momentum": 0.0, "optim.lr": 0.05, "optim.scheduler": "constant",
             "optim.warmup_steps": 0, "optim.grad_clip": 0.0, "loss.learn_temperature": True}
    one, two = tmp_path / "one", tmp_path / "two"
    run_train(load_config(CONFIG, tiny_overrides(world, one, **extra)))
    prepared = {"data.prepared": tmp_path / "prepared", "data.prepared_shard": 8}
    mp.spawn(train_rank, args=(2, _free_port(), CONFIG, tiny_overrides(world, two, **extra, **prepared)), nprocs=2)

    r1 = [r for r in _rows(one) if "loss" in r]
    r2 = [r for r in _rows(two) if "loss" in r]
    assert [r["step"] for r in r2] == [1, 2, 3, 4]
    for a, b in zip(r1, r2):
        for key in ("loss", "loss_image_text", "loss_masked_image", "loss_masked_text", "grad_norm", "alpha",
                    "temperature"):
            assert b[key] == pytest.approx(a[key], rel=2e-4, abs=1e-6), (a["step"], key)
    assert r1[0]["loss"] != pytest.approx(r1[-1]["loss"], abs=1e-4)   # the weights did move
    # SGD without momentum: each step moves log τ by lr × its gradient, so equal temperatures at every
    # step are equal gradients; it did move (a 2× gradient would show as a 2× step)
    assert abs(r1[-1]["temperature"] - 0.5) > 1e-3
    w1 = load_file(str(one / "checkpoints/last/model.safetensors"))
    w2 = load_file(str(two / "checkpoints/last/model.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-3, atol=1e-5, msg=k)
    report = json.loads((two / "report.json").read_text())
    assert report["world_size"] == 2 and report["prepared"]["shards"] == 14 and report["prepared"]["built"] == 14
    assert len(list((tmp_path / "prepared" / "images").iterdir())) == 7      # 56 images, 8 per shard
