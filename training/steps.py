"""One optimizer step (with gradient accumulation and DDP) and one validation pass."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from focusclip.training.dist import Dist, all_true
from focusclip.training.loss import FocusLoss


class NonFiniteLoss(Exception):
    """The loss (or gradient norm) became NaN/Inf: the step was not applied."""


@dataclass
class StepResult:
    loss: float
    parts: dict[str, float]
    grad_norm: float
    samples: int


def autocast(device: torch.device, precision: str):
    """bf16 autocast on GPU (precision auto|bf16), nothing on CPU or with fp32."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def forward_loss(model, loss_fn: FocusLoss, batch: dict, device: torch.device, precision: str):
    """(total, parts, outputs) for one batch already on `device`."""
    with autocast(device, precision):
        out = model(batch["pixels"], batch["input_ids"], batch["attention_mask"], batch.get("heatmaps"))
    total, parts = loss_fn(out)
    return total, parts, out


def train_step(model, raw_model, loss_fn: FocusLoss, opt, sched, micro: list[dict], d: Dist,
               precision: str, grad_clip: float) -> StepResult:
    """Forward/backward over `micro` (accumulated), then one optimizer step.

    Each rank's loss is over the global batch (gathered embeddings) but only its local embeddings
    carry gradients; DDP averages gradients over ranks, so the loss is scaled by world_size to make
    the step equal to one process on the whole batch. Raises NonFiniteLoss before touching weights."""
    model.train()
    totals, parts_sum, n = 0.0, {}, 0
    for j, batch in enumerate(micro):
        batch = to_device(batch, d.device)
        last = j == len(micro) - 1
        sync = contextlib.nullcontext() if (last or not d.enabled) else model.no_sync()
        with sync:
            total, parts, _ = forward_loss(model, loss_fn, batch, d.device, precision)
            (total * (d.world_size / len(micro))).backward()
        totals += float(total.detach()) / len(micro)
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + float(v.detach()) / len(micro)
        n += batch["pixels"].shape[0] * d.world_size
    norm = _clip(raw_model, grad_clip)
    if not all_true(d, math.isfinite(totals) and math.isfinite(norm)):
        opt.zero_grad(set_to_none=True)
        raise NonFiniteLoss(f"loss {totals}, grad norm {norm}")
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return StepResult(totals, parts_sum, norm, n)


def _clip(model: torch.nn.Module, max_norm: float) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))


@torch.no_grad()
def validate(raw_model, loader, device: torch.device, precision: str, loss_kind: str, weights: dict,
             max_batches: Optional[int] = None) -> tuple[Optional[dict], Optional[np.ndarray]]:
    """Mean validation losses over the loader (one process, no gather), and the image–text cosine
    similarity matrix [N, N] of the first batch. (None, None) for an empty loader."""
    raw_model.eval()
    loss_fn = FocusLoss(loss_kind, weights, gather=lambda x: x)
    sums: dict[str, float] = {}
    batches, sim = 0, None
    for batch in loader:
        if max_batches is not None and batches >= max_batches:
            break
        batch = to_device(batch, device)
        total, parts, out = forward_loss(raw_model, loss_fn, batch, device, precision)
        sums["val_loss"] = sums.get("val_loss", 0.0) + float(total)
        for k, v in parts.items():
            sums[f"val_loss_{k}"] = sums.get(f"val_loss_{k}", 0.0) + float(v)
        if sim is None:
            sim = (out.image.float() @ out.text.float().T).cpu().numpy()
        batches += 1
    if not batches:
        return None, None
    return {k: v / batches for k, v in sums.items()}, sim
