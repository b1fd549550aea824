"""Where metric rows go (`train.log_to`): `metrics.jsonl` always; TensorBoard event files and a
Weights & Biases run when asked for and installed (the `logging` extra). A row is the dict the
trainer logs: `step`, `epoch` and numbers (loss, pair losses, lr, …, or val_loss …).

W&B runs offline (files under `RUN/wandb/`, `wandb sync` uploads them later) unless the user has
configured it in the environment (`WANDB_MODE`, or `WANDB_API_KEY`): training never opens a network
connection the user did not ask for. The run id is kept in `RUN/wandb-run-id` so `--resume`
continues the same W&B run.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path
from typing import Optional

from focusclip.core.errors import fail
from focusclip.core.io import JsonlAppender, atomic_write_text

LOGGERS = ("jsonl", "tensorboard", "wandb")
PACKAGE = {"tensorboard": "tensorboard", "wandb": "wandb"}
WANDB_ID = "wandb-run-id"


def check_loggers(kinds: tuple[str, ...], where: str = "config") -> None:
    """Every logger named is known and its package installed: a one-line error before any training."""
    for kind in kinds:
        if kind not in LOGGERS:
            raise fail(f"train.log_to names '{kind}', not one of {', '.join(LOGGERS)}", where, "fix train.log_to")
        package = PACKAGE.get(kind)
        if package and importlib.util.find_spec(package) is None:
            raise fail(f"train.log_to has {kind}, but the {package} package is not installed", where,
                       f"pip install 'focusclip[logging]' (or {package}), or drop {kind} from train.log_to")


def _numbers(row: dict) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if k not in ("step", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardLog:
    """`RUN/tensorboard/` event files: `train/<key>` per step, `val/<key>` per epoch."""

    def __init__(self, run_dir: Path, resume_step: Optional[int]):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged past its last checkpoint (as metrics.jsonl)
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)

    def write(self, row: dict) -> None:
        group = "val" if "val_loss" in row else "train"
        for key, value in _numbers(row).items():
            self.writer.add_scalar(f"{group}/{key}", value, row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def wandb_mode() -> str:
    """'offline' unless the environment configures W&B (then W&B's own choice, from WANDB_MODE)."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return os.environ.get("WANDB_MODE") or "online"
    return "offline"


class WandbLog:
    """A W&B run in `RUN/wandb/`, named after the run directory, with the resolved config."""

    def __init__(self, run_dir: Path, config: dict, resumed: bool):
        import wandb

        id_file = run_dir / WANDB_ID
        run_id = id_file.read_text().strip() if resumed and id_file.is_file() else secrets.token_hex(4)
        atomic_write_text(id_file, run_id + "\n")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "focusclip"), name=run_dir.name, id=run_id,
                              dir=str(run_dir), config=config, mode=wandb_mode(), resume="allow",
                              settings=wandb.Settings(silent=True, console="off"))

    def write(self, row: dict) -> None:
        prefix = "val/" if "val_loss" in row else "train/"
        self.run.log({prefix + k: v for k, v in _numbers(row).items()} | {"epoch": row.get("epoch")},
                     step=row["step"])

    def close(self) -> None:
        self.run.finish()


class MetricLog:
    """All the loggers of `kinds`, written together; `metrics.jsonl` is always one of them."""

    def __init__(self, run_dir: Path, kinds: tuple[str, ...], config: dict, resume_step: Optional[int]):
        check_loggers(kinds)
        self.jsonl = JsonlAppender(run_dir / "metrics.jsonl")
        self.others = []
        try:
            if "tensorboard" in kinds:
                self.others.append(TensorBoardLog(run_dir, resume_step))
            if "wandb" in kinds:
                self.others.append(WandbLog(run_dir, config, resumed=resume_step is not None))
        except BaseException:
            self.close()
            raise

    def write(self, row: dict) -> None:
        self.jsonl.write(row)
        for log in self.others:
            log.write(row)

    def close(self) -> None:
        self.jsonl.close()
        for log in self.others:
            log.close()
