"""Contrastive losses of FocusCLIP, in plain torch.

`nt_xent(a, b, t)` equals pytorch-metric-learning 2.3's `SelfSupervisedLoss(NTXentLoss(t))` (the
paper's reference; symmetric by default): the 2N embeddings [a; b] are pooled, the positive of each
is its counterpart, its negatives are the other 2N − 2 (same-modality ones included); similarity is
cosine / t; the loss is the mean over the 2N anchors of −log(e^pos / (e^pos + Σ e^neg)).
`clip_loss(a, b, t)` is CLIP's cross-modal-only InfoNCE: mean of the a→b and b→a cross-entropies.

Under DDP, `gather_with_grad` collects every rank's embeddings and puts the local tensor (which
carries the autograd graph) back in its slot, so negatives span the global batch.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

# (pair name, first view, second view) of the FocusCLIP objective
PAIRS = (("image_text", "image", "text"), ("masked_image", "masked", "image"), ("masked_text", "masked", "text"))


def _f32(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 embeddings (autocast) → float32 for the softmax; float64 stays (tests)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """a, b [N, D] (any norm) → scalar NT-Xent over the 2N pooled embeddings."""
    n = a.shape[0]
    z = F.normalize(_f32(torch.cat([a, b])), dim=-1)              # [2N, D]
    sim = z @ z.T / temperature                                     # [2N, 2N]
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))                       # an anchor is not its own negative
    target = torch.arange(2 * n, device=z.device).roll(n)           # i ↔ i + N
    return F.cross_entropy(sim, target)


def clip_loss(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """a, b [N, D] → CLIP's symmetric cross-modal InfoNCE (no same-modality negatives)."""
    a, b = F.normalize(_f32(a), dim=-1), F.normalize(_f32(b), dim=-1)
    logits = a @ b.T / temperature                                   # [N, N]
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """[n, D] per rank → [sum n, D] in rank order; only the local slice carries gradients, which is
    all this rank's parameters need (DDP then sums the ranks' contributions). Needs equal n."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


class FocusLoss(nn.Module):
    """Weighted sum over the pairs (image, text), (masked, image), (masked, text); the CLIP baseline
    (no masked view) uses image–text only. Returns (total, {pair: loss})."""

    def __init__(self, kind: str = "ntxent", weights: Optional[dict] = None,
                 gather: Callable[[torch.Tensor], torch.Tensor] = gather_with_grad):
        super().__init__()
        assert kind in ("ntxent", "clip"), f"unknown loss kind {kind}"
        self.fn = nt_xent if kind == "ntxent" else clip_loss
        self.weights = dict(weights or {"image_text": 1.0, "masked_image": 1.0, "masked_text": 1.0})
        self.gather = gather

    def forward(self, out) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        views = {"image": out.image, "text": out.text, "masked": out.masked}
        views = {k: self.gather(v) for k, v in views.items() if v is not None}
        parts: dict[str, torch.Tensor] = {}
        for name, first, second in PAIRS:
            if first in views and second in views and self.weights.get(name, 0.0) != 0.0:
                parts[name] = self.fn(views[first], views[second], out.temperature)
        assert parts, "no loss pair is active: check loss.weights"
        total = sum(self.weights[k] * v for k, v in parts.items())
        return total, parts
