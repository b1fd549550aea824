"""The training loop's numbers stay on the device: a step reads nothing back (no host sync), metric
rows are the means of the steps since the previous row, a resume between two rows carries the open
window, and a non-finite step between rows stops the run at the next read with nothing saved after it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from focusclip.core.errors import FocusError
from focusclip.training.config import load_config
from focusclip.training.dist import Dist
from focusclip.training.factory import build_model
from focusclip.training.loss import FocusLoss
from focusclip.training.optim import build_optimizer, build_scheduler
from focusclip.training.steps import make_amp, train_step
from focusclip.training.text import train_wordpiece
from focusclip.training.trainer import run_train
from tests.conftest import REPO
from tests.training.fixtures import make_world, tiny_overrides

CONFIG = REPO / "configs/tiny-focusclip.yaml"
HOST_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"}


class HostReads(TorchFunctionMode):
    """Records every tensor method that brings a value to the host (on a GPU: a sync)."""

    def __init__(self, exempt: set[int]):
        super().__init__()
        self.exempt, self.reads = exempt, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS and args and id(args[0]) not in self.exempt:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    return make_world(tmp_path_factory.mktemp("loop"), n_train=32, n_val=0)


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("optim", ["adamw", "sgd"])
def test_a_training_step_reads_nothing_back_from_the_device(optim):
    cfg = load_config(CONFIG, [f"optim.name={optim}", "model.text.dropout=0.1"])
    tok = train_wordpiece(["a person standing on the left", "a figure raising the right arm"] * 10, 200)
    model = build_model(cfg, tok)
    opt, amp = build_optimizer(model, cfg.optim), make_amp(torch.device("cpu"), "fp32")
    sched = build_scheduler(opt, 100, cfg.optim)
    ids = torch.randint(5, len(tok), (4, 9))
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[0, 5:] = 0                                    # padding: the text tower must not ask whether
    batch = {"pixels": torch.randn(4, 3, 64, 64), "heatmaps": torch.rand(4, 64, 64), "input_ids": ids,
             "attention_mask": mask}
    train_step(model, model, FocusLoss(), opt, sched, [batch, batch], Dist(), amp, 1.0)   # optimizer state
    # AdamW keeps its step counters on the host by design (reading them is no device sync)
    exempt = {id(s["step"]) for s in opt.state.values() if "step" in s}
    with HostReads(exempt) as mode:
        res = train_step(model, model, FocusLoss(), opt, sched, [batch, batch], Dist(), amp, 1.0)
    assert mode.reads == []
    assert res.loss.shape == () and res.grad_norm.shape == () and bool(res.finite)
    with HostReads(exempt) as mode:                    # the probe does catch a read
        float(res.loss)
    assert mode.reads == ["__float__"]


def test_rows_are_means_of_the_steps_since_the_previous_row_and_resume_carries_the_window(world, tmp_path):
    base = {"train.batch_size": 8, "train.epochs": 4, "train.checkpoint_every": 5, "model.text.dropout": 0.1}
    every = tmp_path / "every"
    run_train(load_config(CONFIG, tiny_overrides(world, every, **base)))
    per_step = {r["step"]: r for r in _rows(every)}
    cfg = load_config(CONFIG, tiny_overrides(world, tmp_path / "third", **base, **{"train.log_every": 3}))
    run_train(cfg)
    third = _rows(tmp_path / "third")
    assert [r["step"] for r in third] == [3, 6, 9, 12, 15, 16]          # every 3rd, and the last
    for r, lo in zip(third, (1, 4, 7, 10, 13, 16)):
        steps = range(lo, r["step"] + 1)
        for key in ("loss", "loss_image_text", "loss_masked_text", "grad_norm"):
            mean = sum(per_step[s][key] for s in steps) / len(steps)
            assert r[key] == pytest.approx(mean, rel=1e-5), (r["step"], key)
        for key in ("lr", "alpha", "temperature"):                      # the values at the row's step
            assert r[key] == pytest.approx(per_step[r["step"]][key], rel=1e-6)
    # killed after row 12, resumed from checkpoint 10 (step 10 is in the open window of row 12)
    out = tmp_path / "killed"
    cfg = load_config(CONFIG, tiny_overrides(world, out, **base, **{"train.log_every": 3}))

    def kill(step, row):
        if step == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, on_step=kill)
    run_train(cfg, resume="latest")
    assert _rows(out) == third


def test_a_non_finite_step_between_rows_stops_at_the_next_row_with_nothing_saved(world, tmp_path):
    out = tmp_path / "nan"
    cfg = load_config(CONFIG, tiny_overrides(world, out, **{
        "optim.name": "sgd", "optim.lr": "1e30", "optim.grad_clip": 0.0, "optim.warmup_steps": 0,
        "train.batch_size": 8, "train.log_every": 4, "train.checkpoint_every": 0, "train.max_steps": 8}))
    with pytest.raises(FocusError, match=r"non-finite training loss at step (\d).*no checkpoint was saved yet") as e:
        run_train(cfg)
    bad = int(str(e.value).split("at step ")[1].split(" ")[0])
    assert 2 <= bad <= 4                                   # the first bad step, found at the row of step 4
    assert not (out / "checkpoints").exists()
    assert not (out / "metrics.jsonl").is_file() or _rows(out) == []
