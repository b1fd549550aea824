"""train.precision and train.device: bf16 only where the GPU has it natively, else fp16 with a grad
scaler; cuda:N; an fp16 run with its scaler on the CPU (the same code path a GPU takes)."""
from __future__ import annotations

import json

import pytest
import torch

from focusclip.core.errors import FocusError
from focusclip.training.checkpoint import load_state
from focusclip.training.config import load_config
from focusclip.training.dist import resolve_device
from focusclip.training.steps import make_amp, resolve_precision
from focusclip.training.trainer import run_train
from tests.conftest import REPO
from tests.training.fixtures import make_world, tiny_overrides

GPU, CPU = torch.device("cuda", 0), torch.device("cpu")


@pytest.mark.parametrize("asked,native,want", [
    ("auto", True, "bf16"), ("auto", False, "fp16"), ("bf16", True, "bf16"), ("fp16", True, "fp16"),
    ("fp16", False, "fp16"), ("fp32", False, "fp32")])
def test_precision_on_a_gpu_follows_native_bf16(asked, native, want):
    assert resolve_precision(GPU, asked, bf16_ok=native) == want
    amp = make_amp(GPU, asked, bf16_ok=native) if want != "fp16" else None
    if amp is not None:      # a GradScaler for CUDA can be built without a GPU only when disabled
        assert not amp.scaler.is_enabled()


def test_bf16_on_a_gpu_without_native_bf16_is_an_error_not_an_emulation():
    with pytest.raises(FocusError, match="no native bf16.*train.precision=auto"):
        resolve_precision(GPU, "bf16", bf16_ok=False)


def test_precision_on_the_cpu():
    assert [resolve_precision(CPU, p) for p in ("auto", "fp32", "bf16", "fp16")] == ["fp32", "fp32", "bf16", "fp16"]
    assert make_amp(CPU, "fp16").scaler.is_enabled() and not make_amp(CPU, "auto").scaler.is_enabled()


def test_device_values():
    for ok in ("auto", "cpu", "cuda", "cuda:3"):
        assert load_config(REPO / "configs/tiny-clip.yaml", [f"train.device={ok}"]).train.device == ok
    from focusclip.training.config import check_config

    cfg = load_config(REPO / "configs/tiny-clip.yaml", ["train.device=gpu1", "data.dataset=.", "data.annotations=null", "data.images=null"])
    with pytest.raises(FocusError, match="train.device is 'gpu1', not auto, cpu, cuda or cuda:N"):
        check_config(cfg)
    assert resolve_device("cpu") == CPU
    if not torch.cuda.is_available():
        with pytest.raises(FocusError, match="train.device is cuda:1 but no CUDA device is visible"):
            resolve_device("cuda:1")
    else:
        with pytest.raises(FocusError, match="torchrun started 2 processes"):
            resolve_device("cuda:0", world_size=2)


def test_fp16_run_uses_a_grad_scaler_and_saves_it(tmp_path):
    torch.set_num_threads(1)
    world = make_world(tmp_path / "w", n_train=16, n_val=0)
    out = tmp_path / "fp16"
    cfg = load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, out, **{
        "train.precision": "fp16", "train.batch_size": 8, "train.max_steps": 2, "train.checkpoint_every": 0}))
    report = run_train(cfg)
    assert report.extra["precision"] == "fp16"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] == r["loss"] for r in rows)   # finite
    state = load_state(out / "checkpoints/last")              # the resume reader, numpy RNG types allowed only
    assert state["scaler"]["scale"] > 0                      # the scaler's state rides along for --resume
    saved = json.loads((out / "report.json").read_text())
    assert saved["precision"] == "fp16"
