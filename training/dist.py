"""Distributed set-up from the environment `torchrun` writes (RANK, WORLD_SIZE, LOCAL_RANK).

`Dist` is a small value passed around instead of globals: rank 0 logs, plots and saves.
NCCL on GPU, gloo on CPU. Without torchrun it is a single process and nothing is initialised.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from focusclip.core.errors import fail


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """`train.device` → this process's device: auto/cuda use cuda:LOCAL_RANK (torchrun puts one
    process on each GPU); cuda:N picks GPU N for a single process (several runs side by side)."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise fail(f"train.device is {name} but no CUDA device is visible", "config", "--set train.device=cpu")
    if ":" not in name:
        return torch.device("cuda", local_rank)
    index = int(name.split(":", 1)[1])
    if world_size > 1:
        raise fail(f"train.device {name} pins one GPU, but torchrun started {world_size} processes", "config",
                   "--set train.device=cuda (each process takes cuda:LOCAL_RANK); choose GPUs with "
                   "CUDA_VISIBLE_DEVICES")
    if index >= torch.cuda.device_count():
        raise fail(f"train.device is {name} but only {torch.cuda.device_count()} CUDA device(s) are visible",
                   "config", f"use cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return torch.device("cuda", index)


def init_dist(device: str = "auto") -> Dist:
    """Read torchrun's environment; join the process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local, world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(minutes=30),
                                device_id=dev if dev.type == "cuda" else None)
    return Dist(rank, world, local, dev)


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_true(d: Dist, flag: bool) -> bool:
    """True only when `flag` is True on every rank (e.g. a finite loss everywhere)."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def mean_over_ranks(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """Average of a device tensor over ranks, left on the device (no host read)."""
    if not d.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / d.world_size


def gather_objects(d: Dist, obj):
    """[obj of rank 0, rank 1, …] on every rank (small picklable objects: RNG states, counts)."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(d: Dist, obj):
    """Rank 0's `obj` on every rank."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
