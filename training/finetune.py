"""Fine-tuning controls open_clip users know: lock a tower (or all of it but its last N layers), and
WiSE-FT (Wortsman et al. 2022): interpolate the fine-tuned weights with the pretrained ones.

A tower is its encoder, its layer stack (the longest `nn.ModuleList` in it), what comes before the
stack (embeddings, CLIP's pre-norm) and what comes after it in registration order (final norm,
pooling head) and its projection. Locking freezes
all of it; `unlocked_layers = N > 0` leaves the last N layers and everything after the stack learning
(open_clip's `lock_image_unlocked_groups`). Frozen parameters get `requires_grad = False`, so the
optimizer never holds them: they end training bit-identical.
"""
from __future__ import annotations

import torch
from torch import nn

from focusclip.training.config import FocusConfig


def tower_parts(model: nn.Module, tower: str) -> list[tuple[str, nn.Module]]:
    """(name, module) of a FocusCLIPModel's `image` or `text` tower: the encoder with its projection."""
    if model.config.base:
        dual = model.dual
        names = ("vision_model", "visual_projection") if tower == "image" else ("text_model", "text_projection")
        return [(n, getattr(dual, n)) for n in names if getattr(dual, n, None) is not None]
    return [("vision", model.vision)] if tower == "image" else [("text", model.text)]


def _layer_stack(module: nn.Module) -> nn.ModuleList:
    stacks = [m for m in module.modules() if isinstance(m, nn.ModuleList)]
    assert stacks, f"{type(module).__name__} has no layer stack"
    return max(stacks, key=len)


def lock_tower(model: nn.Module, tower: str, unlocked_layers: int = 0) -> int:
    """Freeze `tower` ("image" or "text") but its last `unlocked_layers` layers and what follows the
    stack; returns how many parameters stay frozen."""
    parts = tower_parts(model, tower)
    for _, module in parts:
        module.requires_grad_(False)
    if unlocked_layers > 0:
        encoder = parts[0][1]
        stack = _layer_stack(encoder)
        for layer in list(stack)[-unlocked_layers:]:
            layer.requires_grad_(True)
        # parameters come in registration order: what follows the stack's last one (final norm, head)
        params = list(encoder.parameters())
        in_stack = {id(p) for p in stack.parameters()}
        last = max(i for i, p in enumerate(params) if id(p) in in_stack)
        for p in params[last + 1:]:
            p.requires_grad_(True)
        for _, module in parts[1:]:           # the projection
            module.requires_grad_(True)
    return sum(p.numel() for _, m in parts for p in m.parameters() if not p.requires_grad)


def apply_locks(model: nn.Module, cfg: FocusConfig) -> dict[str, int]:
    """The config's locks on a FocusCLIPModel → {tower: frozen parameter count} (for the report). A
    SigLIP's logit bias is frozen too unless the loss is SigLIP's: no other loss uses it, and DDP
    refuses a trainable parameter without a gradient."""
    m, frozen = cfg.model, {}
    bias = getattr(getattr(model, "dual", None), "logit_bias", None) if model.config.base else None
    if bias is not None and cfg.loss.kind != "siglip":
        bias.requires_grad_(False)
        frozen["logit_bias"] = bias.numel()
    if m.lock_image:
        frozen["image"] = lock_tower(model, "image", m.lock_image_unlocked_layers)
    if m.lock_text:
        frozen["text"] = lock_tower(model, "text", m.lock_text_unlocked_layers)
    return frozen


def interpolate(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """WiSE-FT: (1 − alpha)·base + alpha·tuned for every floating tensor; alpha 0 is `base` and 1 is
    `tuned` exactly (copies), integer buffers (position ids) come from `tuned`."""
    assert base.keys() == tuned.keys(), f"different weights: {sorted(base.keys() ^ tuned.keys())[:3]}"
    out = {}
    for k, t in tuned.items():
        b = base[k]
        if not t.is_floating_point() or alpha == 1.0:
            out[k] = t.clone()
        elif alpha == 0.0:
            out[k] = b.to(t.dtype).clone()
        else:
            out[k] = (1 - alpha) * b.to(t.dtype) + alpha * t
    return out
