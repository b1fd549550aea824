"""Entry point of a spawned DDP rank for tests (importable by torch.multiprocessing.spawn)."""
from __future__ import annotations

import os


def train_rank(rank: int, world: int, port: int, config: str, overrides: list[str]) -> None:
    """Run `run_train` as rank `rank` of `world` gloo processes, as torchrun would set it up."""
    import torch

    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from training.config import load_config
    from training.trainer import run_train

    run_train(load_config(config, overrides))
