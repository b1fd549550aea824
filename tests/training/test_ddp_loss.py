"""The DDP loss is exact by construction: two gloo ranks, each scoring its own rows against the
embeddings gathered from both, give (after DDP's gradient averaging) the loss and the gradient of
every parameter — the temperature included, under whatever name, shared or one per pair — that one
process computes on the concatenated batch with the single-process definitions of training/loss.py."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.training.ddp_worker import loss_rank, micro_batches, one_step, tiny_model
from focusclip.training.dist import Dist
from focusclip.training.loss import PAIRS

ALL = {"image_text": 1.0, "masked_image": 0.5, "masked_text": 2.0}
# the temperature under FocusCLIP's name and under another: nothing may depend on the name
CASES = [dict(kind="ntxent", weights=ALL, masked=True, temperature_name="log_temperature", rows=8, micro=1),
         dict(kind="ntxent", weights=ALL, masked=True, temperature_name="tau", rows=8, micro=1),
         dict(kind="clip", weights=ALL, masked=True, temperature_name="tau", rows=8, micro=1),
         dict(kind="clip", weights=ALL, masked=False, temperature_name="log_temperature", rows=6, micro=1),
         dict(kind="ntxent", weights=ALL, masked=True, temperature_name="tau", rows=4, micro=2),   # accumulation
         dict(kind="ntxent", weights=ALL, masked=True, temperature_name="log_temperature", rows=8, micro=1,
              per_pair=True),   # one τ per pair
         dict(kind="siglip", weights=ALL, masked=True, temperature_name="tau", rows=8, micro=1, bias=True),
         dict(kind="siglip", weights=ALL, masked=False, temperature_name="logit_scale", rows=4, micro=2, bias=True)]
DTYPES = {torch.float64: 1e-12, torch.float32: 1e-6}     # dtype → tolerance (absolute and relative)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every (case, dtype) as (one process, [rank 0, rank 1]), both ranks spawned once for all."""
    cases = [dict(c, dtype=dtype) for dtype in DTYPES for c in CASES]
    out = tmp_path_factory.mktemp("ddp_loss")
    mp.spawn(loss_rank, args=(2, _free_port(), cases, str(out)), nprocs=2)
    ranks = [torch.load(out / f"rank{r}.pt") for r in range(2)]
    torch.set_num_threads(1)
    one = []
    for case in cases:
        raw = tiny_model(case["temperature_name"], case["dtype"], case.get("per_pair", False), case.get("bias", False))
        one.append(one_step(raw, raw, case["kind"], case["weights"], micro_batches(case, 2, None), Dist()))
    return [(case, single, [r[i] for r in ranks]) for i, (case, single) in enumerate(zip(cases, one))]


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


@pytest.mark.parametrize("i", range(len(CASES) * len(DTYPES)))
def test_two_ranks_give_the_one_process_loss_and_gradients(runs, i):
    case, single, ranks = runs[i]
    tol = DTYPES[case["dtype"]]
    reported = 1e-6        # the step reports its losses and norm in float32 whatever the model's dtype
    assert set(single["parts"]) == ({n for n, _, _ in PAIRS} if case["masked"] else {"image_text"})
    for rank in ranks:
        assert _close(rank["loss"], single["loss"], reported), (rank["loss"], single["loss"])
        for k, v in single["parts"].items():
            assert _close(rank["parts"][k], v, reported), k
        assert _close(rank["grad_norm"], single["grad_norm"], reported)
        assert rank["grads"].keys() == single["grads"].keys()
        for name, g in single["grads"].items():
            assert g.abs().max() > 1e-3, name                     # every parameter has a gradient to get right
            torch.testing.assert_close(rank["grads"][name], g, rtol=tol, atol=tol, msg=name)
    assert case["temperature_name"] in single["grads"]
    if case.get("per_pair"):                                      # each pair's τ has its own gradient
        assert single["grads"][case["temperature_name"]].abs().min() > 1e-3

