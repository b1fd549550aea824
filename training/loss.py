"""Contrastive losses of FocusCLIP, in plain torch.

`nt_xent(a, b, t)` equals pytorch-metric-learning 2.3's `SelfSupervisedLoss(NTXentLoss(t))` (the
paper's reference; symmetric by default): the 2N embeddings [a; b] are pooled, the positive of each
is its counterpart, its negatives are the other 2N − 2 (same-modality ones included); similarity is
cosine / t; the loss is the mean over the 2N anchors of −log(e^pos / (e^pos + Σ e^neg)).
`clip_loss(a, b, t)` is CLIP's cross-modal-only InfoNCE: mean of the a→b and b→a cross-entropies.
`siglip_loss(a, b, t, bias)` is SigLIP's (Zhai et al. 2023) sigmoid loss: every (a_i, b_j) pair a
binary problem, logit cos/t + bias, label +1 on the diagonal and −1 off it, summed over j and
averaged over i (−1/N Σ_i Σ_j log σ(z_ij · logit_ij)).

Both are written as *local rows against a pool*: the anchors are some rows of the batch, the
candidates all of it. On one process the rows are the whole batch. Under DDP (`FocusLoss(…, d)`)
each rank scores only its own rows against the embeddings gathered from every rank (open_clip's
`local_loss` with `gather_with_grad`), so the negatives span the global batch and each rank builds
[2n, 2N] logits instead of [2N, 2N]. SigLIP's loss needs one direction only: this rank's a rows against
every rank's b covers each global pair once, and its sum over j divided by the local n averages, over
ranks, to the global loss. The gather's backward sums over ranks the gradient every
rank's loss has for each row and hands each rank its own rows' share. With equal rows per rank, the
mean of the ranks' losses is the global loss, and DDP's mean of the ranks' gradients is exactly its
gradient, for every parameter (the temperature included): no world-size factor, no parameter
singled out by name.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from focusclip.training.dist import Dist

LOSS_KINDS = ("ntxent", "clip", "siglip")   # config.py's LossConfig.kind names the same
# (pair name, first view, second view) of the FocusCLIP objective
PAIRS = (("image_text", "image", "text"), ("masked_image", "masked", "image"), ("masked_text", "masked", "text"))


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Unit rows; bf16/fp16 embeddings (autocast) → float32 for the softmax; float64 stays (tests)."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return F.normalize(x, dim=-1)


def nt_xent_rows(a: torch.Tensor, b: torch.Tensor, all_a: torch.Tensor, all_b: torch.Tensor, first: int,
                 temperature: torch.Tensor | float) -> torch.Tensor:
    """NT-Xent of the local anchors a, b [n, D] against the pool all_a, all_b [N, D] (unit rows; the
    local rows are rows first … first+n−1 of the pool) → mean over the 2n anchors. Each anchor's
    candidates are the 2N pooled embeddings but itself; its positive is the other view of its sample."""
    n, big = a.shape[0], all_a.shape[0]
    sim = torch.cat([a, b]) @ torch.cat([all_a, all_b]).T / temperature          # [2n, 2N]
    rows = torch.arange(n, device=a.device) + first                             # [n] global sample index
    own = torch.cat([rows, rows + big])                                          # [2n] each anchor's own column
    sim = sim.masked_fill(torch.arange(2 * big, device=a.device) == own[:, None], float("-inf"))
    return F.cross_entropy(sim, torch.cat([rows + big, rows]))                  # target: the other view


def clip_rows(a: torch.Tensor, b: torch.Tensor, all_a: torch.Tensor, all_b: torch.Tensor, first: int,
              temperature: torch.Tensor | float) -> torch.Tensor:
    """CLIP's InfoNCE of the local rows a, b [n, D] against the pool all_a, all_b [N, D] (unit rows,
    local at first …): mean of the a→all_b and b→all_a cross-entropies (no same-modality negatives)."""
    target = torch.arange(a.shape[0], device=a.device) + first
    return 0.5 * (F.cross_entropy(a @ all_b.T / temperature, target)                # [n, N]
                  + F.cross_entropy(b @ all_a.T / temperature, target))


def siglip_rows(a: torch.Tensor, all_b: torch.Tensor, first: int, temperature: torch.Tensor | float,
                bias: torch.Tensor | float) -> torch.Tensor:
    """SigLIP's sigmoid loss of the local rows a [n, D] against the pool all_b [N, D] (unit rows;
    a's positives are columns first … first+n−1): −Σ_j log σ(±(a_i·b_j / t + bias)), mean over i."""
    logits = a @ all_b.T / temperature + bias                                        # [n, N]
    cols = torch.arange(all_b.shape[0], device=a.device)
    rows = torch.arange(a.shape[0], device=a.device) + first
    labels = 2.0 * (cols[None, :] == rows[:, None]).to(logits.dtype) - 1.0           # +1 positive, −1 negative
    return -F.logsigmoid(labels * logits).sum(1).mean()


def siglip_loss(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float, bias: torch.Tensor | float,
                d: Dist = Dist()) -> torch.Tensor:
    """a, b [n, D] → SigLIP's sigmoid loss; under DDP (`d`) this rank's a rows against every rank's b."""
    a, b = _unit(a), _unit(b)
    return siglip_rows(a, gather_rows(b, d), d.rank * a.shape[0], temperature, bias)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float, d: Dist = Dist()) -> torch.Tensor:
    """a, b [n, D] (any norm) → scalar NT-Xent over the 2n pooled embeddings; under DDP (`d`), of
    this rank's 2n anchors against the 2N embeddings of every rank."""
    n = a.shape[0]
    z = _unit(torch.cat([a, b]))                                                  # [2n, D]
    a, b = z[:n], z[n:]
    return nt_xent_rows(a, b, gather_rows(a, d), gather_rows(b, d), d.rank * n, temperature)


def clip_loss(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float, d: Dist = Dist()) -> torch.Tensor:
    """a, b [n, D] → CLIP's symmetric cross-modal InfoNCE (no same-modality negatives); under DDP
    (`d`) this rank's rows against every rank's."""
    a, b = _unit(a), _unit(b)
    return clip_rows(a, b, gather_rows(a, d), gather_rows(b, d), d.rank * a.shape[0], temperature)


class _GatherRows(torch.autograd.Function):
    """[n, D] per rank → [W·n, D], every rank's rows in rank order. Backward: every rank's loss has a
    gradient for every rank's rows; the all-reduce sums them, and each rank keeps its own rows'."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)   # the engine's buffer is not ours to reduce in place
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n], None, None


def gather_rows(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """[n, D] on each rank → [W·n, D] (rank order) whose gradient reaches the rank each row came from;
    `x` itself on one process. Every rank must have the same n (the sampler's per-rank batch)."""
    return _GatherRows.apply(x, d.rank, d.world_size) if d.enabled else x


class FocusLoss(nn.Module):
    """Weighted sum over the pairs (image, text), (masked, image), (masked, text); the CLIP baseline
    (no masked view) uses image–text only; each pair divides by `out.temperature` ([] shared) or by its
    own entry of it ([P], PAIRS order); `siglip` adds the model's logit bias (`out.bias`) to every
    pair's logits. Returns (total, {pair: loss}). With a DDP `d`, the loss of this rank's rows against
    the gathered batch (the global loss is the mean over ranks)."""

    def __init__(self, kind: str = "ntxent", weights: Optional[dict] = None, d: Dist = Dist()):
        super().__init__()
        assert kind in LOSS_KINDS, f"unknown loss kind {kind}"
        self.kind = kind
        self.fn = {"ntxent": nt_xent, "clip": clip_loss}.get(kind)
        self.weights = dict(weights or {"image_text": 1.0, "masked_image": 1.0, "masked_text": 1.0})
        self.d = d

    def forward(self, out) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        views = {"image": out.image, "text": out.text, "masked": out.masked}
        parts: dict[str, torch.Tensor] = {}
        for i, (name, first, second) in enumerate(PAIRS):
            if views[first] is not None and views[second] is not None and self.weights.get(name, 0.0) != 0.0:
                t = out.temperature[i] if out.temperature.dim() else out.temperature   # per pair, or shared
                if self.kind == "siglip":
                    assert out.bias is not None, "loss.kind siglip needs a model with a logit bias (model.init: a SigLIP)"
                    parts[name] = siglip_loss(views[first], views[second], t, out.bias, self.d)
                else:
                    parts[name] = self.fn(views[first], views[second], t, self.d)
        assert parts, "no loss pair is active: check loss.weights"
        total = sum(self.weights[k] * v for k, v in parts.items())
        return total, parts
