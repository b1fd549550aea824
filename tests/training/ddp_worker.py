"""Entry point of a spawned DDP rank for tests (importable by torch.multiprocessing.spawn)."""
from __future__ import annotations

import gc
import os


def train_rank(rank: int, world: int, port: int, config: str, overrides: list[str]) -> None:
    """Run `run_train` as rank `rank` of `world` gloo processes, as torchrun would set it up."""
    import torch

    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import focusclip.training.trainer as trainer
    from focusclip.training.config import load_config

    trainer.shutdown = _checked(trainer.shutdown)
    trainer.run_train(load_config(config, overrides))


def _checked(shutdown):
    """`shutdown` that first asserts no DDP wrapper is alive: one still holding the process group
    when it is destroyed makes the gloo group die at interpreter exit, aborting the rank now and then."""
    from torch.nn.parallel import DistributedDataParallel

    def checked(d):
        alive = [o for o in gc.get_objects() if isinstance(o, DistributedDataParallel)]
        assert not alive, f"{len(alive)} DistributedDataParallel wrapper(s) alive at shutdown"
        shutdown(d)
    return checked
