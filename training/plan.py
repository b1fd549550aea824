"""How a run's training images make optimizer steps, and `focus-train --check`'s data lines: the checks
the run makes on its data before its first step (images present, heatmaps, a full batch), made once
for both."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from focusclip.core.errors import fail
from focusclip.core.report import Report
from focusclip.training.config import FocusConfig, TrainConfig
from focusclip.training.data import EpochBatchSampler, select_items


@dataclass(frozen=True)
class StepPlan:
    per_rank: int          # micro-batch size of each process
    steps_per_epoch: int   # optimizer steps (incomplete batches dropped)
    epochs: int            # epochs the run may take
    total: int             # optimizer steps of the whole run


def plan_steps(n_train: int, t: TrainConfig, world: int, where: str) -> StepPlan:
    """How the run's `n_train` images make steps. `train.max_steps` overrides `train.epochs` (as the
    Hugging Face Trainer's max_steps does): the run takes as many epochs as those steps need."""
    per_rank, rem = divmod(t.batch_size, world * t.grad_accum)
    if rem or per_rank < 1:
        raise fail(f"train.batch_size {t.batch_size} is not a multiple of processes × grad_accum "
                   f"({world} × {t.grad_accum})", "config", "change train.batch_size or train.grad_accum")
    steps_per_epoch = EpochBatchSampler(n_train, per_rank, 0, world).batches_per_epoch // t.grad_accum
    if steps_per_epoch < 1:
        raise fail(f"{n_train} training images make no full batch of {t.batch_size}", where,
                   f"lower train.batch_size (at most {n_train} here) or add data")
    if t.max_steps is None:
        return StepPlan(per_rank, steps_per_epoch, t.epochs, t.epochs * steps_per_epoch)
    return StepPlan(per_rank, steps_per_epoch, math.ceil(t.max_steps / steps_per_epoch), t.max_steps)


def check_data(cfg: FocusConfig) -> list[str]:
    """`focus-train --check`'s data lines: the checks the run makes on its data before its first step
    (images present, heatmaps, a full batch), for a local dataset; a hub dataset is read at the start."""
    from focusclip.core.hub_repo import names_hub_repo

    if names_hub_repo(cfg.data.dataset):
        return [f"  data: {cfg.data.dataset} from the hub, checked when the run starts (--check downloads nothing)"]
    train, val = select_items(cfg, Report("check"), cfg.model.triple)
    plan = plan_steps(len(train), cfg.train, int(os.environ.get("WORLD_SIZE", "1")), cfg.data.dataset)
    ends = (f"train.max_steps {plan.total} ({plan.epochs} epochs)" if cfg.train.max_steps is not None
            else f"train.epochs {plan.epochs}")
    return [f"  data: {len(train)} training images, {len(val)} validation images",
            f"  steps: {plan.steps_per_epoch} per epoch of batch {cfg.train.batch_size}, {plan.total} in all "
            f"(ended by {ends})"]
