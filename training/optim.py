"""Optimizer (SGD with momentum as in the paper, or AdamW), LR schedule, and RNG state capture."""
from __future__ import annotations

import math
import random

import numpy as np
import torch

from focusclip.training.config import OptimConfig


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Weight decay only on matrices (not on biases, norms, alpha or the temperature)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas[:2]))


def lr_factor(step: int, total: int, cfg: OptimConfig) -> float:
    """Multiplier of the base LR at optimizer step `step` (0-based): linear warmup over
    `warmup_steps`, then constant, or cosine from 1 down to `min_lr_ratio` at `total`."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.scheduler == "constant":
        return 1.0
    span = max(1, total - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(opt: torch.optim.Optimizer, total_steps: int, cfg: OptimConfig):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, cfg))


def rng_state() -> dict:
    """Every RNG a training step may draw from (dropout uses torch's)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seed torch's global generators (CPU and every GPU) for one optimizer step from (seed, rank,
    step): dropout, the only thing a step draws, then depends on nothing but the step a checkpoint
    holds, whatever else drew from the global generator before (a DataLoader iterator's base seed,
    validation, a resume). Seeding is host-side only: no sync."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(2, np.uint32)
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))
