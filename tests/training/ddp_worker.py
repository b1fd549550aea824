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


# -- the loss and gradients of one step, 2 ranks against 1 process (tests/training/test_ddp_loss.py) -------

FEATURES, EMBED = 12, 8


def tiny_model(temperature_name: str, dtype, per_pair: bool = False, bias: bool = False):
    """Linear towers over feature vectors, the masked view through the image tower (as in FocusCLIP)
    and a learnable temperature under any name (`per_pair`: one per loss pair; `bias`: a learnt
    logit bias, SigLIP's); seeded, so every process builds the same weights."""
    import math

    import torch
    from torch import nn

    from focusclip.training.model import FocusOutput

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.image = nn.Linear(FEATURES, EMBED)
            self.text = nn.Linear(FEATURES, EMBED)
            log_t = torch.tensor([math.log(0.3), math.log(0.1), math.log(0.6)] if per_pair else math.log(0.3))
            self.register_parameter(temperature_name, nn.Parameter(log_t))
            self.logit_bias = nn.Parameter(torch.tensor(-1.0)) if bias else None

        def forward(self, pixels, input_ids, attention_mask, heatmaps):
            masked = self.image(pixels * heatmaps) if heatmaps is not None else None
            return FocusOutput(self.image(pixels), self.text(input_ids), masked, None,
                               getattr(self, temperature_name).exp(), self.logit_bias)

    torch.manual_seed(0)
    return Tiny().to(dtype)


def global_batch(rows: int, masked: bool, dtype) -> dict:
    """Fixed random features standing in for the pixels, the token ids and the heatmaps of `rows` samples."""
    import torch

    g = torch.Generator().manual_seed(1)
    batch = {"pixels": torch.randn(rows, FEATURES, generator=g, dtype=dtype),
             "input_ids": torch.randn(rows, FEATURES, generator=g, dtype=dtype),
             "attention_mask": torch.ones(rows, 1)}
    if masked:
        batch["heatmaps"] = torch.rand(rows, FEATURES, generator=g, dtype=dtype)
    return batch


def rows_of(batch: dict, index) -> dict:
    return {k: v[index] for k, v in batch.items()}


def one_step(model, raw, kind: str, weights: dict, micro: list[dict], d) -> dict:
    """train_step once with an optimizer that only records the gradients it is given (no clipping)."""
    import torch

    from focusclip.training.loss import FocusLoss
    from focusclip.training.steps import make_amp, train_step

    class Record(torch.optim.Optimizer):
        def __init__(self):
            super().__init__(list(raw.parameters()), {"lr": 0.0})
            self.grads: dict = {}

        def step(self, closure=None):
            self.grads = {n: p.grad.detach().clone() for n, p in raw.named_parameters()}

    class NoSchedule:
        def step(self):
            pass

    opt = Record()
    res = train_step(model, raw, FocusLoss(kind, weights, d), opt, NoSchedule(), micro, d,
                     make_amp(d.device, "fp32"), 0.0)
    return {"loss": res.loss.item(), "parts": {k: v.item() for k, v in res.parts.items()},
            "grad_norm": res.grad_norm.item(), "grads": opt.grads}


def loss_rank(rank: int, world: int, port: int, cases: list[dict], out: str) -> None:
    """Each case's step as rank `rank` of `world` gloo processes, on its rows of every micro-batch;
    the results saved to `out`/rank<r>.pt."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from focusclip.training.dist import Dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    d = Dist(rank, world, rank, torch.device("cpu"))
    results = []
    for case in cases:
        raw = tiny_model(case["temperature_name"], case["dtype"], case.get("per_pair", False), case.get("bias", False))
        model = DistributedDataParallel(raw)
        results.append(one_step(model, raw, case["kind"], case["weights"], micro_batches(case, world, rank), d))
        del model
        gc.collect()
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def micro_batches(case: dict, world: int, rank: int | None) -> list[dict]:
    """The case's micro-batches of `rows` rows each: rank `rank`'s share of each (rank r holds rows
    r·n … r·n+n−1, n = rows / world), or with rank None all of each, as one process trains on them."""
    import torch

    full = global_batch(case["rows"] * case["micro"], case["masked"], case["dtype"])
    step = case["rows"]                       # rows per micro-batch, all ranks together
    n = step // world
    out = []
    for j in range(case["micro"]):
        lo = j * step
        index = torch.arange(lo, lo + step) if rank is None else torch.arange(lo + rank * n, lo + rank * n + n)
        out.append(rows_of(full, index))
    return out
