"""`train.log_to`: TensorBoard event files and an offline W&B run hold the rows of metrics.jsonl, read
back with TensorBoard's own reader and from the W&B run file; a logger whose package is missing is a
one-line error before training; W&B stays offline unless the environment configures it."""
from __future__ import annotations

import importlib.util
import json
import struct

import pytest
import torch

from focusclip.core.errors import FocusError
from focusclip.training import loggers
from focusclip.training.config import check_config, load_config
from focusclip.training.trainer import run_train
from tests.conftest import REPO
from tests.training.fixtures import make_world, tiny_overrides


def wandb_history(run_file) -> list[dict]:
    """History rows of a `.wandb` run file: a LevelDB-format log (32 KiB blocks; each chunk a 7-byte
    header crc32c(4) length(2) type(1), FULL=1 … LAST=4) after a 7-byte `:W&B` header, each record a
    protobuf `Record`."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf, rows, block = 7, b"", [], 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:            # a block tail too short for a header is padding
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf, pos = buf + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(buf)
            buf = b""
            if rec.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    return rows


def test_tensorboard_and_offline_wandb_hold_the_metrics_rows(tmp_path, monkeypatch):
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    torch.set_num_threads(1)
    world = make_world(tmp_path / "world", n_train=16, n_val=8)
    out = tmp_path / "run"
    cfg = load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, out, **{
        "train.max_steps": 3, "train.batch_size": 8, "train.checkpoint_every": 0,
        "train.log_to": "[tensorboard, wandb]"}))
    run_train(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3] and val

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/alpha", "train/lr", "val/val_loss"} <= set(events.Tags()["scalars"])
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in train]
    assert [e.value for e in events.Scalars("val/val_loss")] == [pytest.approx(r["val_loss"], rel=1e-6) for r in val]

    runs = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1                                     # offline: nothing was sent anywhere
    history = wandb_history(runs[0])
    assert [h["train/loss"] for h in history] == [pytest.approx(r["loss"]) for r in train]
    assert history[-1]["_step"] == 3 and runs[0].name == f"run-{(out / 'wandb-run-id').read_text().strip()}.wandb"


def test_a_logger_without_its_package_is_a_config_error(tmp_path, monkeypatch):
    world = make_world(tmp_path / "world", n_train=8, n_val=0)
    cfg = load_config(REPO / "configs/tiny-focusclip.yaml",
                      tiny_overrides(world, tmp_path / "run", **{"train.log_to": "wandb"}))
    assert cfg.train.log_to == ("wandb",)
    check_config(cfg)                                          # installed here: fine
    real = importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(FocusError, match=r"train.log_to has wandb, but the wandb package is not installed "
                                         r"\(pip install 'focusclip\[logging\]'"):
        check_config(cfg)
    with pytest.raises(FocusError, match="'train.log_to\\[1\\]' is 'mlflow', not one of jsonl, tensorboard, wandb"):
        load_config(REPO / "configs/tiny-focusclip.yaml", ["train.log_to=[jsonl, mlflow]"])


def test_wandb_is_offline_unless_the_environment_configures_it(monkeypatch):
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    assert loggers.wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert loggers.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.wandb_mode() == "disabled"
