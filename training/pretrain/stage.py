"""`run_pretrain`: one tower's pretraining, reused when finished, resumed when interrupted."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from focusclip.core.report import Report
from focusclip.training.pretrain.config import (PretrainConfig, Tower, check_pretrain_config, default_output,
                                                tower_options)


def run_pretrain(tower: Tower, cfg: PretrainConfig, output: Optional[str | Path] = None,
                 force: bool = False) -> Report:
    """Pretrain one tower per `cfg` into `output` (default OUTPUT_DIR/<tower>). The report's
    `extra["reused"]` is True when a finished tower with the same options was kept."""
    from focusclip.core.io import read_json
    from focusclip.training.pretrain.loop import REPORT, finished, train_tower

    check_pretrain_config(cfg, tower)
    out = default_output(cfg, tower, output)
    options = tower_options(cfg, tower)
    report = Report(f"pretrain-{tower}", options)
    if finished(out, options, force):
        done = read_json(out / REPORT)
        report.counts, report.extra = dict(done.get("counts", {})), {"reused": True, "val": done.get("val")}
        return report
    import torch

    torch.manual_seed(cfg.seed)
    if tower == "vision":
        from focusclip.training.pretrain.vision import MaskedImageModelling

        objective, sched = MaskedImageModelling(cfg, report), cfg.mim
    else:
        from focusclip.training.pretrain.text import MaskedLanguageModelling

        objective, sched = MaskedLanguageModelling(cfg, report), cfg.mlm
    if objective.num_samples() < sched.batch_size:
        from focusclip.core.errors import fail

        raise fail(f"{objective.num_samples()} training samples make no batch of {sched.batch_size}",
                   cfg.data.dataset, f"lower {'mim' if tower == 'vision' else 'mlm'}.batch_size or add data")
    report.extra["reused"] = False
    return train_tower(objective, sched, cfg.seed, out, options, report, desc=f"pretrain-{tower}")
