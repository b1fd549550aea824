"""The optimizer's parameter groups, the LR schedule's values at given steps (worked out by hand
here), and per-step seeding."""
from __future__ import annotations

import math

import pytest
import torch

from focusclip.training.config import OptimConfig
from focusclip.training.optim import build_optimizer, build_scheduler, lr_factor, seed_step


@pytest.mark.parametrize("step, want", [(0, 0.25), (1, 0.5), (3, 1.0), (4, 1.0), (99, 1.0)])
def test_linear_warmup_then_constant(step, want):
    assert lr_factor(step, 100, OptimConfig(warmup_steps=4)) == pytest.approx(want)


# Cosine over the 10 steps after a 2-step warmup, from 1 down to min_lr_ratio = 0.1:
# factor = 0.1 + 0.9 · ½(1 + cos(π · (step − 2) / 10))
@pytest.mark.parametrize("step, want", [
    (0, 0.5), (1, 1.0),                          # warmup: (step + 1) / 2
    (2, 1.0),                                    # progress 0
    (4, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2))),
    (7, 0.55),                                   # halfway: cos(π/2) = 0
    (12, 0.1), (20, 0.1),                        # the end, and past it (clamped)
])
def test_cosine_after_warmup_reaches_the_floor_at_total(step, want):
    cfg = OptimConfig(scheduler="cosine", warmup_steps=2, min_lr_ratio=0.1)
    assert lr_factor(step, 12, cfg) == pytest.approx(want)


def test_cosine_without_warmup_starts_at_one():
    cfg = OptimConfig(scheduler="cosine")
    r = math.sqrt(0.5)           # cos(π/4)
    assert [lr_factor(s, 4, cfg) for s in range(5)] == pytest.approx([1.0, (1 + r) / 2, 0.5, (1 - r) / 2, 0.0])


def test_the_scheduler_applies_the_factor_to_the_base_lr_step_by_step():
    model = torch.nn.Linear(2, 2)
    cfg = OptimConfig(lr=0.2, warmup_steps=2, scheduler="cosine", min_lr_ratio=0.0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, 6, cfg)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # warmup ½, 1; then cosine over total − warmup = 4 steps at progress 0, ¼, ½, ¾
    r = math.sqrt(0.5)
    assert lrs == pytest.approx([0.2 * f for f in (0.5, 1.0, 1.0, (1 + r) / 2, 0.5, (1 - r) / 2)])
    assert all(g["lr"] == pytest.approx(0.0) for g in opt.param_groups)     # step 6 = total: the floor


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)                       # weight [4, 3]: decayed; bias: not
        self.norm = torch.nn.LayerNorm(4)                       # weight and bias [4]: not decayed
        self.log_temperature = torch.nn.Parameter(torch.zeros(()))
        self.frozen = torch.nn.Parameter(torch.ones(2, 2), requires_grad=False)


@pytest.mark.parametrize("name, kind", [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_weight_decay_only_on_trainable_matrices(name, kind):
    model = Tiny()
    opt = build_optimizer(model, OptimConfig(name=name, lr=0.01, weight_decay=0.05, betas=(0.8, 0.9, 0.5)))
    assert type(opt) is kind
    decay, no_decay = opt.param_groups
    assert [id(p) for p in decay["params"]] == [id(model.proj.weight)] and decay["weight_decay"] == 0.05
    assert {id(p) for p in no_decay["params"]} == {id(model.proj.bias), id(model.norm.weight),
                                                   id(model.norm.bias), id(model.log_temperature)}
    assert no_decay["weight_decay"] == 0.0
    if name == "sgd":
        assert decay["momentum"] == 0.9
    else:
        assert decay["betas"] == (0.8, 0.9)                     # the first two only


def test_seed_step_depends_only_on_seed_rank_and_step():
    def draw(seed, rank, step):
        torch.rand(5)                                            # whatever drew before
        seed_step(seed, rank, step)
        return torch.rand(3)

    assert torch.equal(draw(1, 0, 7), draw(1, 0, 7))
    assert not torch.equal(draw(1, 0, 7), draw(1, 0, 8))
    assert not torch.equal(draw(1, 0, 7), draw(1, 1, 7))
    assert not torch.equal(draw(1, 0, 7), draw(2, 0, 7))
