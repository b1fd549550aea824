"""`FocusViTConfig` (`model_type: focusclip_vit`), the config of the convolutional-stem vision tower
(focusclip.training.vit, which registers both with the Auto classes when imported), apart from the
model so that configs can be read without building a ViT.
"""
from __future__ import annotations

from typing import Sequence

from transformers.models.vit.configuration_vit import ViTConfig

from focusclip.training.config import POOLINGS, STEMS, conv_stem_channels


class FocusViTConfig(ViTConfig):
    """A ViTConfig with `stem` ("patch" or "conv": 3×3 stride-2 convolutions in place of the patch
    projection), `stem_channels` (the widths before the last convolution, which outputs
    `hidden_size`; 2 ** (len + 1) = `patch_size`) and `pooling` ("cls" or "mean" of the patch tokens)."""
    model_type = "focusclip_vit"

    def __init__(self, stem: str = "conv", stem_channels: Sequence[int] = (), pooling: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if stem not in STEMS or pooling not in POOLINGS:
            raise ValueError(f"stem must be one of {STEMS} and pooling one of {POOLINGS}, got {stem!r}, {pooling!r}")
        self.stem = stem
        self.stem_channels = (conv_stem_channels(self.patch_size, self.hidden_size, stem_channels)
                              if stem == "conv" else [])
        self.pooling = pooling


def register_config(model_class) -> None:
    """Make `AutoConfig`/`AutoModel` know `model_type: focusclip_vit`, built by `model_class`."""
    from transformers.models.auto.configuration_auto import AutoConfig
    from transformers.models.auto.modeling_auto import AutoModel

    AutoConfig.register(FocusViTConfig.model_type, FocusViTConfig, exist_ok=True)
    AutoModel.register(FocusViTConfig, model_class, exist_ok=True)
