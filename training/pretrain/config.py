"""The pretraining config (`configs/mini-towers.yaml`): frozen dataclasses loaded like the training config.

It names the data (the training config's `data` keys), the towers' shapes (`vision`, `text`: the
training config's `model.vision` / `model.text` keys), the resolution, and one schedule per tower:
`mim` (masked-image modelling of the vision tower) and `mlm` (masked language modelling of the text
tower). `architecture: models/NAME.yaml` brings the shapes, the resolution and the text length from a
model size file, under the config's own keys. Overrides are `--set a.b=value`, unknown keys are
one-line errors, as in `training/config.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional


from focusclip.core.errors import fail
from focusclip.training.config import DataConfig, TextConfig, VisionConfig, load_yaml_config, to_dict


@dataclass(frozen=True)
class Schedule:
    """AdamW with linear warmup and cosine decay (as the contrastive recipe), for one tower."""
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    save_every: int = 500                   # resume state every N steps (0 = only at the end)
    log_every: int = 10


@dataclass(frozen=True)
class MIMConfig(Schedule):
    """SimMIM (Xie et al. 2022): random patches replaced by a learned mask token, their pixels
    regressed (L1) from the encoder's patch tokens through a 1×1 conv + pixel shuffle."""
    mask_ratio: float = 0.5
    flip: bool = True                       # random horizontal flips (images only, no text to swap)


@dataclass(frozen=True)
class MLMConfig(Schedule):
    """BERT's masked language modelling: 15% of the tokens chosen, 80% → [MASK], 10% random, 10% kept."""
    mask_prob: float = 0.15
    max_length: int = 128                   # descriptions truncated to this many tokens


@dataclass(frozen=True)
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image_size: int = 64
    seed: int = 0
    mim: MIMConfig = field(default_factory=MIMConfig)
    mlm: MLMConfig = field(default_factory=MLMConfig)
    output_dir: str = "runs/towers"         # towers go to OUTPUT_DIR/vision and OUTPUT_DIR/text


Tower = Literal["vision", "text"]


# where each key of an architecture file (configs/models/*.yaml) lands; embed_dim has none (no
# projection before contrastive training)
ARCHITECTURE_PLACES = {"vision": "vision", "text": "text", "image_size": "image_size",
                       "max_text_length": "data.max_text_length"}


def load_pretrain_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """The pretraining config at `path`, with `--set` overrides (`load_yaml_config`)."""
    return load_yaml_config(path, overrides, PretrainConfig, "configs/mini-towers.yaml", ARCHITECTURE_PLACES)


def check_pretrain_config(cfg: PretrainConfig, tower: Tower, where: str = "config") -> None:
    """What can be checked before any work: paths, shapes, the schedule."""
    d = cfg.data
    if not Path(d.dataset).exists():
        raise fail(f"data.dataset does not exist: {d.dataset}", where,
                   "build it with `focus-data publish`, or --set data.dataset=PATH")
    for key in ("annotations", "images"):
        value = getattr(d, key)
        if value is not None and not Path(value).exists():
            raise fail(f"data.{key} does not exist: {value}", where, f"fix the path or --set data.{key}=PATH")
    sched = cfg.mim if tower == "vision" else cfg.mlm
    prefix = "mim" if tower == "vision" else "mlm"
    for key in ("steps", "batch_size", "log_every"):
        if getattr(sched, key) < 1:
            raise fail(f"{prefix}.{key} must be at least 1", where, "fix the value")
    if tower == "vision":
        if cfg.vision.stem != "patch" or cfg.vision.pooling != "cls":
            raise fail("pretrain-vision trains ViT's own patch stem and [CLS] readout (SimMIM masks patches, which a "
                       "convolutional stem would let leak into their neighbours)", where,
                       "set vision: {stem: patch, pooling: cls} in the pretraining config")
        if cfg.image_size % cfg.vision.patch_size:
            raise fail(f"image_size {cfg.image_size} is not a multiple of vision.patch_size "
                       f"{cfg.vision.patch_size}", where, "change one of them")
        if not 0.0 < cfg.mim.mask_ratio < 1.0:
            raise fail("mim.mask_ratio must lie strictly between 0 and 1", where, "SimMIM uses about 0.5")
    elif not 0.0 < cfg.mlm.mask_prob < 1.0:
        raise fail("mlm.mask_prob must lie strictly between 0 and 1", where, "BERT uses 0.15")
    shape = cfg.vision if tower == "vision" else cfg.text
    if shape.hidden_size % shape.num_heads:
        raise fail(f"{tower}.hidden_size must be divisible by num_heads", where, "fix the shape")


def tower_options(cfg: PretrainConfig, tower: Tower) -> dict:
    """What a finished tower was built from: a rerun with other options must not reuse it."""
    d = to_dict(cfg)
    keep = {"data", "image_size", "seed", tower, "mim" if tower == "vision" else "mlm"}
    return {k: v for k, v in d.items() if k in keep}


def default_output(cfg: PretrainConfig, tower: Tower, output: Optional[str | Path]) -> Path:
    return Path(output) if output else Path(cfg.output_dir) / tower
