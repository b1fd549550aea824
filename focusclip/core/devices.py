"""`--device` of the commands that run torch on one device (focus-data heatmaps, focus-eval): 'auto',
'cpu', 'cuda' or 'cuda:N'; a device this machine lacks is a user error with the fix, never a fallback.
(focus-train's `train.device` adds torchrun's ranks: training.dist.resolve_device.) `cpu_threads`:
torch's thread count beside busy workers, for every command that runs torch next to a worker pool."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

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


@contextlib.contextmanager
def cpu_threads(device: torch.device, workers: int) -> Iterator[None]:
    """Torch's intra-op threads for a block, restored afterwards. On the CPU, `workers` busy
    processes or threads keep their cores and torch gets the rest: at least 1, never more than it
    had. Intra-op threads beside busy workers oversubscribe the machine, and OpenMP threads waiting
    for a descheduled peer slow every matmul (measured on 2 cores with 2 data workers: a tiny-model
    training step 5× slower). On a GPU, or with no workers, nothing changes."""
    before = torch.get_num_threads()
    if device.type != "cpu" or workers <= 0:
        yield
        return
    torch.set_num_threads(min(before, max(1, (os.cpu_count() or 1) - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
