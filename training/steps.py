"""One optimizer step (with gradient accumulation, DDP and mixed precision) and one validation pass."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from focusclip.core.errors import fail
from focusclip.training.dist import Dist, mean_over_ranks
from focusclip.training.loss import FocusLoss


@dataclass
class StepResult:
    """One optimizer step's numbers, left on the device (reading them is a host sync; the loop reads
    them once per `train.log_every` steps, `training/stats.py`)."""
    loss: torch.Tensor              # 0-d float32: the weighted sum, mean over the micro-batches and ranks
    parts: dict[str, torch.Tensor]  # pair → 0-d float32, mean over the micro-batches and ranks
    grad_norm: torch.Tensor         # 0-d float32: global norm before clipping (inf/nan: an fp16 overflow)
    finite: torch.Tensor            # 0-d bool: the loss is finite, and so is the norm (fp16: the scaler's call)
    samples: int                    # summed over ranks


def native_bf16(device: torch.device) -> bool:
    """Whether the GPU computes bf16 natively (NVIDIA compute capability ≥ 8.0), not by emulation."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:   # torch without the argument
        return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(device: torch.device, precision: str, bf16_ok: Optional[bool] = None) -> str:
    """`train.precision` (auto, bf16, fp16, fp32) on `device` → the precision run: auto is bf16 on a
    GPU with native bf16, fp16 (with a grad scaler) on older GPUs, fp32 on the CPU. bf16 asked for on
    a GPU without native bf16 is an error, not a slow emulation. `bf16_ok` overrides the probe (tests)."""
    if device.type != "cuda":
        return "fp32" if precision == "auto" else precision
    native = native_bf16(device) if bf16_ok is None else bf16_ok
    if precision == "auto":
        return "bf16" if native else "fp16"
    if precision == "bf16" and not native:
        raise fail(f"train.precision is bf16 but {device} has no native bf16 (compute capability below 8.0)",
                   "config", "--set train.precision=auto (fp16 with a grad scaler here) or fp32")
    return precision


@dataclass
class Amp:
    """The precision of a run: autocast to bf16/fp16 (fp32: none) and, for fp16 only, a grad scaler
    (a disabled scaler passes everything through, so the step code is one path)."""
    precision: str
    device_type: str
    scaler: torch.amp.GradScaler

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device_type, dtype=dtype)


def make_amp(device: torch.device, precision: str, bf16_ok: Optional[bool] = None) -> Amp:
    name = resolve_precision(device, precision, bf16_ok)
    return Amp(name, device.type, torch.amp.GradScaler(device.type, enabled=name == "fp16"))


def to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def forward_loss(model, loss_fn: FocusLoss, batch: dict, amp: Amp):
    """(total, parts, outputs) for one batch already on the device."""
    with amp.autocast():
        out = model(batch["pixels"], batch["input_ids"], batch["attention_mask"], batch.get("heatmaps"))
    total, parts = loss_fn(out)
    return total, parts, out


def train_step(model, raw_model, loss_fn: FocusLoss, opt, sched, micro: list[dict], d: Dist,
               amp: Amp, grad_clip: float) -> StepResult:
    """Forward/backward over `micro` (accumulated), then one optimizer step, without a host sync
    (bf16/fp32; fp16's grad scaler reads its overflow flag, as torch's GradScaler does).

    Under DDP each rank's loss is its own rows against the gathered batch (training/loss.py): the
    global loss is the mean of the ranks' losses and DDP's mean of their gradients is its gradient,
    so the step is the one-process step on the whole batch; the losses reported are that mean (one
    small all-reduce, no host read). A non-finite loss or norm is not checked here: `finite` says
    so, and the loop acts on it before anything is logged or saved (`training/stats.py`). Under fp16
    an overflowing gradient is the scaler's business (it skips that step and lowers the scale)."""
    model.train()
    total_sum, parts_sum, n = None, {}, 0
    for j, batch in enumerate(micro):
        batch = to_device(batch, d.device)
        last = j == len(micro) - 1
        sync = contextlib.nullcontext() if (last or not d.enabled) else model.no_sync()
        with sync:
            total, parts, _ = forward_loss(model, loss_fn, batch, amp)
            amp.scaler.scale(total / len(micro)).backward()
        total_sum = _add(total_sum, total.detach().float() / len(micro))
        for k, v in parts.items():
            parts_sum[k] = _add(parts_sum.get(k), v.detach().float() / len(micro))
        n += batch["pixels"].shape[0] * d.world_size
    total_sum, parts_sum = _mean_over_ranks(d, total_sum, parts_sum)
    amp.scaler.unscale_(opt)
    norm = _clip(raw_model, grad_clip, total_sum)
    finite = torch.isfinite(total_sum) & (torch.isfinite(norm) | amp.scaler.is_enabled())
    if amp.scaler.is_enabled():
        scale = amp.scaler.get_scale()
        amp.scaler.step(opt)
        amp.scaler.update()
        if amp.scaler.get_scale() >= scale:   # a lowered scale: the step was skipped
            sched.step()
    else:
        opt.step()
        sched.step()
    opt.zero_grad(set_to_none=True)
    return StepResult(total_sum, parts_sum, norm, finite, n)


def _add(acc: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return x if acc is None else acc + x


def _mean_over_ranks(d: Dist, total: torch.Tensor, parts: dict[str, torch.Tensor]):
    """The ranks' local losses → the global batch's (equal rows per rank: the mean), in one all-reduce."""
    if not d.enabled:
        return total, parts
    mean = mean_over_ranks(d, torch.stack([total, *parts.values()]))
    return mean[0], dict(zip(parts, mean[1:]))


def _clip(model: torch.nn.Module, max_norm: float, like: torch.Tensor) -> torch.Tensor:
    """Clip the gradients to `max_norm` (0: only measure) → their global norm before clipping, a 0-d
    float32 tensor on the device (clip_grad_norm_ scales on the device: no host read)."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return torch.zeros_like(like)
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm).float()
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])).float()


@torch.no_grad()
def validate(raw_model, loader, device: torch.device, amp: Amp, loss_kind: str, weights: dict,
             max_batches: Optional[int] = None) -> tuple[Optional[dict], Optional[np.ndarray]]:
    """Mean validation losses over the loader (one process, no gather), and the image–text cosine
    similarity matrix [N, N] of the first batch. (None, None) for an empty loader."""
    raw_model.eval()
    loss_fn = FocusLoss(loss_kind, weights)
    sums: dict[str, float] = {}
    batches, sim = 0, None
    for batch in loader:
        if max_batches is not None and batches >= max_batches:
            break
        batch = to_device(batch, device)
        total, parts, out = forward_loss(raw_model, loss_fn, batch, amp)
        sums["val_loss"] = sums.get("val_loss", 0.0) + float(total)
        for k, v in parts.items():
            sums[f"val_loss_{k}"] = sums.get(f"val_loss_{k}", 0.0) + float(v)
        if sim is None:
            sim = (out.image.float() @ out.text.float().T).cpu().numpy()
        batches += 1
    if not batches:
        return None, None
    return {k: v / batches for k, v in sums.items()}, sim
