"""`--device` of the commands that run torch on one device (focus-data heatmaps, focus-eval): 'auto',
'cpu', 'cuda' or 'cuda:N'; a device this machine lacks is a user error with the fix, never a fallback.
(focus-train's `train.device` adds torchrun's ranks: training.dist.resolve_device.)"""
from __future__ import annotations

import torch

from focusclip.core.errors import fail


def resolve_device(name: str | None) -> torch.device:
    """'auto' → cuda when available, else cpu; 'cpu'; 'cuda' or 'cuda:N' (a user error without CUDA)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise fail("CUDA is not available on this machine", f"--device {name}",
                       "use --device cpu or --device auto")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise fail(f"'{name}' is not a device", "--device", "use auto, cpu, cuda or cuda:N") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise fail(f"no GPU {dev.index} (this machine has {torch.cuda.device_count()})", "--device",
                       "use --device cuda")
        return dev
    raise fail(f"unknown device '{name}'", "--device", "use auto, cpu or cuda")
