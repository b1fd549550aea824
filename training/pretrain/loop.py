"""The loop both pretraining objectives share: AdamW + warmup/cosine, resumable, built in `DIR.incomplete`.

Every random draw of step `s` (the batch, the masks, dropout) comes from generators seeded by
(seed, s), and the data order of an epoch from (seed, epoch), so a run resumed from its last state
(`DIR.incomplete/state.pt`, saved every `save_every` steps) takes exactly the steps the uninterrupted
run would have. The finished tower is a plain `save_pretrained` folder, renamed into place last.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Protocol

import torch

from focusclip.core.errors import fail
from focusclip.core.io import JsonlAppender, atomic_path, read_json, read_jsonl, write_jsonl
from focusclip.core.report import Report
from focusclip.core.progress import progress
from focusclip.training.checkpoint import UNPICKLING_ERRORS, load_pickled, save_torch
from focusclip.training.config import OptimConfig
from focusclip.training.optim import build_optimizer, build_scheduler, seed_step
from focusclip.training.pretrain.config import Schedule

STATE = "state.pt"
METRICS = "metrics.jsonl"
REPORT = "report.json"


class Objective(Protocol):
    """One tower's pretraining task."""
    model: torch.nn.Module

    def loss(self, index: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The scalar loss of the training samples `index` [B]; masks drawn from `gen`."""

    def num_samples(self) -> int: ...

    def validate(self) -> dict:
        """Held-out metrics (fixed masks), for the report."""

    def save(self, folder: Path) -> None:
        """Write the plain tower (`save_pretrained`) into `folder`."""


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def batch_index(n: int, batch: int, seed: int, step: int) -> torch.Tensor:
    """Step `step`'s samples: epoch `step // (n // batch)` is a permutation seeded by (seed, epoch)."""
    per_epoch = n // batch
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[k * batch:(k + 1) * batch]


def finished(out: Path, options: dict, force: bool) -> bool:
    """True when `out` holds a tower built with `options` (reuse it); a tower built with other
    options is an error unless `force`, which deletes it and any partial run."""
    report = out / REPORT
    if force:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(incomplete(out), ignore_errors=True)
        return False
    if not report.is_file():
        if out.exists() and any(out.iterdir()):
            raise fail("exists but holds no finished tower (no report.json)", str(out),
                       "choose another -o/--output, or pass --force to replace it")
        return False
    if read_json(report).get("options") != options:
        raise fail("holds a tower pretrained with other options", str(out),
                   "pass --force to rebuild it, or choose another -o/--output")
    return True


def incomplete(out: Path) -> Path:
    return out.with_name(out.name + ".incomplete")


def _optimizer(objective: Objective, sched: Schedule):
    cfg = OptimConfig(name="adamw", lr=sched.lr, weight_decay=sched.weight_decay, scheduler="cosine",
                      warmup_steps=sched.warmup_steps, grad_clip=sched.grad_clip)
    opt = build_optimizer(objective.model, cfg)
    return opt, build_scheduler(opt, sched.steps, cfg)


def _resume(tmp: Path, objective: Objective, opt, lr_sched, options: dict) -> int:
    """The step to start from: that of a saved state built with the same options, else 0."""
    path = tmp / STATE
    if not path.is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return 0
    try:
        state = load_pickled(path)
    except UNPICKLING_ERRORS:
        state = {}                          # cut short (a full disk) or damaged: start over, as with no state
    if not isinstance(state, dict) or state.get("options") != options:   # not ours to continue
        shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return 0
    objective.model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    lr_sched.load_state_dict(state["scheduler"])
    if (tmp / METRICS).is_file():   # rows a killed run logged after its last state
        write_jsonl(tmp / METRICS, [r for r in read_jsonl(tmp / METRICS) if r["step"] <= state["step"]])
    return int(state["step"])


def _save_state(tmp: Path, objective: Objective, opt, lr_sched, step: int, options: dict) -> None:
    state = {"model": objective.model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": lr_sched.state_dict(), "step": step, "options": options}
    with atomic_path(tmp / STATE) as part:
        save_torch(state, part)   # a full disk: its OSError, naming the file, not torch's RuntimeError


def train_tower(objective: Objective, sched: Schedule, seed: int, out: Path, options: dict,
                report: Report, desc: str) -> Report:
    """Run (or continue) the schedule, then write the tower, `metrics.jsonl` and `report.json` to `out`."""
    tmp = incomplete(out)
    opt, lr_sched = _optimizer(objective, sched)
    start = _resume(tmp, objective, opt, lr_sched, options)
    if start:
        report.extra["resumed_from_step"] = start
    params = [p for p in objective.model.parameters() if p.requires_grad]
    n = objective.num_samples()
    bar = progress(total=sched.steps, initial=start, desc=desc, unit="step")
    t0 = time.perf_counter()
    with JsonlAppender(tmp / METRICS) as log:
        for step in range(start, sched.steps):
            seed_step(seed, 0, step)                            # dropout, when a tower has any
            objective.model.train()
            loss = objective.loss(batch_index(n, sched.batch_size, seed, step), step_generator(seed, step))
            if not torch.isfinite(loss):
                raise fail(f"non-finite pretraining loss at step {step + 1}", str(out),
                           "rerun with a lower lr (the last saved state is kept)")
            loss.backward()
            if sched.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, sched.grad_clip)
            opt.step()
            lr_sched.step()
            opt.zero_grad(set_to_none=True)
            done = step + 1
            if done % sched.log_every == 0 or done == sched.steps:
                log.write({"step": done, "loss": float(loss.detach()), "lr": opt.param_groups[0]["lr"]})
            if sched.save_every and done % sched.save_every == 0 and done < sched.steps:
                _save_state(tmp, objective, opt, lr_sched, done, options)
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
    bar.close()
    report.time("train_s", time.perf_counter() - t0)
    report.count("steps", sched.steps)
    report.count("samples", (sched.steps - start) * sched.batch_size)
    report.extra["val"] = objective.validate()
    from focusclip.core.hub import quiet_transformers

    with quiet_transformers():   # no "Writing model shards" bar in the log
        objective.save(tmp)
    (tmp / STATE).unlink(missing_ok=True)
    report.save(tmp / REPORT)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return report
