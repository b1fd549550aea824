"""The training loop's numbers, kept on the device between metric rows: one host read per row.

A step leaves its loss, pair losses, gradient norm and finiteness flag on the device
(`steps.StepResult`). `StepStats.add` folds them into running sums and remembers the first step
whose loss (or norm) was not finite, with a handful of tiny device ops and no host read. `read`
turns the window into a row: the means since the previous row, alpha and the temperature, in one
`tolist()` (under DDP one all-reduce first, so every rank sees a non-finite value any rank had).
`check` is the same guard without a row, for the moments bad weights could escape between rows
(validation, a checkpoint). A non-finite step is applied to the in-memory weights, but the run stops
at the next read, so no metric row, validation or checkpoint carries it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.distributed as dist

from focusclip.training.dist import Dist
from focusclip.training.loss import PAIRS
from focusclip.training.steps import StepResult

_FAR = 2 ** 40   # above any step count


@dataclass
class Window:
    """What one read gives: the window's means (None when not finite: an fp16 step skipped by the
    scaler), the model's scalars now, and the first non-finite step (None: all finite)."""
    means: dict[str, Optional[float]]
    alpha: Optional[float]
    temperature: float                      # the image–text pair's τ
    bad_step: Optional[int]
    bad_loss: float
    bad_norm: float
    pair_temperatures: dict[str, float] = field(default_factory=dict)   # per-pair τ: temperature_<pair>
                                            # of the other logged pairs ({} with one shared τ)


class StepStats:
    """Running sums of `keys` ("loss", "loss_<pair>", "grad_norm") over the steps since the last read."""

    def __init__(self, keys: tuple[str, ...], device: torch.device):
        self.keys, self.device = keys, device
        self._reset()
        self.bad_step = torch.full((), -1, dtype=torch.int64, device=device)   # first non-finite step
        self.bad_vals = torch.zeros(2, device=device)                          # its (loss, grad norm)
        self.unchecked = False

    def _reset(self) -> None:
        self.sums = torch.zeros(len(self.keys), device=self.device)            # [K] float32
        self.count = 0

    def add(self, step: int, res: StepResult) -> None:
        """Fold one step in; no host read."""
        vals = {"loss": res.loss, "grad_norm": res.grad_norm, **{f"loss_{k}": v for k, v in res.parts.items()}}
        self.sums += torch.stack([vals[k] for k in self.keys])
        self.count += 1
        first = ~res.finite & (self.bad_step < 0)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_vals = torch.where(first, torch.stack([res.loss, res.grad_norm]), self.bad_vals)
        self.unchecked = True

    def read(self, d: Dist, alpha: Optional[torch.Tensor], temperature: torch.Tensor) -> Window:
        """The window's means and the model's scalars in one host read; starts a new window.
        `temperature`: [] shared, or [P] one per pair (PAIRS order; the logged pairs' are kept)."""
        alpha = alpha.detach().float() if alpha is not None else None
        scalars = torch.cat([(alpha if alpha is not None else torch.zeros((), device=self.device))[None],
                             temperature.detach().float().reshape(-1)])
        values = self._fetch(d, [self.sums / max(1, self.count), scalars])
        k, taus = len(self.keys), temperature.numel()
        means = {key: (v if math.isfinite(v) else None) for key, v in zip(self.keys, values[:k])}
        pairs = {f"temperature_{name}": v for (name, _, _), v in zip(PAIRS[1:], values[k + 2:k + 1 + taus])
                 if taus > 1 and f"loss_{name}" in self.keys}
        self._reset()
        return Window(means, values[k] if alpha is not None else None, values[k + 1], *self._bad(values[k + 1 + taus:]),
                      pair_temperatures=pairs)

    def check(self, d: Dist) -> Optional[Window]:
        """Only the non-finite guard (before validation or a checkpoint); None when all is finite or
        nothing was added since the last read or check."""
        if not self.unchecked:
            return None
        bad = self._bad(self._fetch(d, []))
        return Window({}, None, math.nan, *bad) if bad[0] is not None else None

    def _fetch(self, d: Dist, parts: list[torch.Tensor]) -> list[float]:
        """parts + [first bad step, its loss, its norm] as floats: one all-reduce (DDP), one host read."""
        # encoded so that MAX over ranks picks the earliest bad step (0: no rank had one)
        flag = torch.where(self.bad_step >= 0, _FAR - self.bad_step, 0)[None]          # [1] int64
        if d.enabled:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        step = torch.where(flag > 0, _FAR - flag, -1)
        self.unchecked = False
        return torch.cat([*(p.reshape(-1).double() for p in parts), step.double(),
                          self.bad_vals.double()]).tolist()

    @staticmethod
    def _bad(tail: list[float]) -> tuple[Optional[int], float, float]:
        step, loss, norm = tail
        return (int(step) if step >= 0 else None), loss, norm

    # -- resume: a checkpoint between two rows carries the open window -----------------------------
    def state(self) -> dict:
        return {"sums": self.sums.tolist(), "count": self.count, "keys": list(self.keys)}

    def load_state(self, state: Optional[dict]) -> None:
        if state and tuple(state.get("keys", ())) == self.keys:
            self.sums = torch.tensor(state["sums"], dtype=torch.float32, device=self.device)
            self.count = int(state["count"])
