"""Where a run's model comes from: the checkpoint `--resume` names (read and checked before the run
directory is touched) or fresh towers, and the provenance the checkpoint's config.json records."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from focusclip.core.errors import fail, reading
from focusclip.training import checkpoint as ck
from focusclip.training.config import FocusConfig
from focusclip.training.data import FocusDataset
from focusclip.training.factory import Pretrained, build_model


@dataclass
class Saved:
    """A checkpoint to resume from, read (and so checked) before anything is written."""
    dir: Path
    model: torch.nn.Module      # the FocusCLIPModel it holds, on the CPU
    state: dict


DAMAGED = "resume from another checkpoint (checkpoints/<step>), or start over with --force"
# what `_restore` reads from a resume state (every focus-train checkpoint writes them)
STATE_KEYS = ("optimizer", "scheduler", "step", "epoch", "micro_start", "rng")


def read_resume(run_dir: Path, resume: str) -> Optional[Saved]:
    """The model and resume state of `--resume`, parsed up front: a damaged or foreign file is one
    line naming it, before the run directory is touched."""
    ckpt = ck.find_resume_dir(run_dir, resume)
    if ckpt is None:
        return None
    model = ck.load_model(ckpt, DAMAGED)
    with reading(ck.state_file(ckpt), "the resume state", DAMAGED, ck.UNPICKLING_ERRORS):
        state = ck.load_state(ckpt, DAMAGED)
    if not isinstance(state, dict):
        raise fail(f"holds a {type(state).__name__}, not a resume state", str(ck.state_file(ckpt)), DAMAGED)
    lacking = [k for k in STATE_KEYS if k not in state]
    if lacking:
        raise fail(f"not a resume state of focus-train (no {', '.join(lacking)})", str(ck.state_file(ckpt)), DAMAGED)
    return Saved(ckpt, model, state)


def initial_model(cfg: FocusConfig, tokenizer, pre: Optional[Pretrained], saved: Optional[Saved]):
    """(model, where its initial weights came from). On resume the checkpoint's model is used: no
    tower is fetched again, and the sources are those of the run it continues."""
    if saved is None:
        return build_model(cfg, tokenizer, pre), {k: s.to_dict() for k, s in pre.sources.items()}
    prov = saved.model.config.provenance or {}
    init = {k: prov[k] for k in ("vision", "text", "tokenizer") if k in prov} or ck.read_meta(saved.dir).get("init", {})
    return saved.model, {**init, "resumed_from": str(saved.dir)}


def provenance(cfg: FocusConfig, init: dict, train_set: FocusDataset, val_set: Optional[FocusDataset]) -> dict:
    """Where the model's starting weights and its data came from (config.json; the model card)."""
    describers = Counter(d for it in train_set.items for d in it.describers)
    return {**init, "dataset": cfg.data.dataset, "describers": dict(sorted(describers.items())),
            "train_images": len(train_set), "val_images": len(val_set) if val_set is not None else 0}


def resumed_provenance(resume_dir: Path, fresh: dict) -> dict:
    """A resumed run keeps the tower sources of the run it continues (this start only reloaded them)."""
    config = resume_dir / ck.MODEL_CONFIG
    old = json.loads(config.read_text(encoding="utf-8")).get("provenance") or {}
    return {**fresh, **{k: v for k, v in old.items() if k in ("vision", "text", "tokenizer")}}
