"""training package of focusclip: FocusCLIP and the CLIP baseline (model, loss, data, trainer).

The public API for evaluation is `load_checkpoint(path_or_hub_id, device) -> LoadedModel` (see
`training/checkpoint.py`); the transformers model is `FocusCLIPModel` / `FocusCLIPConfig`.
Imports are lazy so the `focus-train` CLI can check a config before
paying for torch.
"""
from __future__ import annotations

__all__ = ["load_checkpoint", "LoadedModel", "run_train", "load_config", "FocusCLIPModel", "FocusCLIPConfig"]


def __getattr__(name: str):
    if name == "FocusCLIPModel":
        from focusclip.training.model import FocusCLIPModel

        return FocusCLIPModel
    if name == "FocusCLIPConfig":
        from focusclip.training.hf_config import FocusCLIPConfig

        return FocusCLIPConfig
    if name in ("load_checkpoint", "LoadedModel"):
        from focusclip.training import checkpoint

        return getattr(checkpoint, name)
    if name == "run_train":
        from focusclip.training.trainer import run_train

        return run_train
    if name == "load_config":
        from focusclip.training.config import load_config

        return load_config
    raise AttributeError(f"module 'training' has no attribute {name!r}")
