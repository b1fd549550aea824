"""The random-init vision tower with early convolutions: transformers' ViT whose 8×8 (or P×P) patch
projection is replaced by a stack of 3×3 stride-2 convolutions, each with batch norm and ReLU (Xiao et
al. 2021, "Early convolutions help transformers see better"), and optionally mean pooling over the
patch tokens instead of the [CLS] token.

A tiny patch ViT learns little from ~5k images in CPU minutes (benchmarks/world_probe.py: 35% among
the 7 drawn Stanford 40 classes with the labels themselves); the same 2-layer ViT behind this stem
reaches 50% there, which is what the miniature's targets need. The stem changes nothing after the
patch embedding: the tokens, the position embeddings and the transformer are ViT's own.

Its config, `FocusViTConfig` (`model_type: focusclip_vit`, focusclip.training.vit_config), is a
`ViTConfig` with `stem`, `stem_channels` and `pooling`. `FocusViTModel` is a `ViTModel` (same forward,
same outputs), so `save_pretrained` / `from_pretrained` and the Auto classes work as for any
transformers model once this module (or focusclip.training.model) is imported, which registers the type.

Batch norm and FocusCLIP's two views: the shared tower sees the clean batch and then the masked one.
The masked pass runs inside `batch_statistics_frozen`, which normalises it with its own batch's
statistics, as training-mode batch norm does, but leaves the running statistics alone: evaluation
normalises clean images with statistics of clean images only, as the CLIP arm's do, and the stem's
state after a step does not depend on the heatmaps. The weights, and so old checkpoints, are unchanged.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from transformers import ViTModel

from focusclip.training.vit_config import FocusViTConfig, register_config


class ConvStem(nn.Module):
    """[B, C, S, S] → [B, hidden, S/P, S/P]: 3×3 stride-2 convolutions, batch norm, ReLU."""

    def __init__(self, config: FocusViTConfig):
        super().__init__()
        widths = [config.num_channels, *config.stem_channels, config.hidden_size]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)

    @property
    def weight(self):   # ViTModel.forward reads the projection's weight for the input dtype
        return self.layers[0].weight

    def forward(self, pixels):
        return self.layers(pixels)


@contextmanager
def batch_statistics_frozen(module: nn.Module) -> Iterator[None]:
    """Inside, every batch norm of `module` that tracks running statistics still normalises a training
    batch with the batch's own mean and variance, but neither updates its running statistics nor counts
    the batch (torch's `track_running_stats = False` in training mode); in eval mode nothing changes."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


class FocusViTModel(ViTModel):
    """ViTModel with `config.stem` as its patch projection."""
    config_class = FocusViTConfig

    def __init__(self, config: FocusViTConfig, add_pooling_layer: bool = False, use_mask_token: bool = False):
        super().__init__(config, add_pooling_layer=add_pooling_layer, use_mask_token=use_mask_token)
        if config.stem == "conv":
            self.embeddings.patch_embeddings.projection = ConvStem(config)
            self.post_init()


register_config(FocusViTModel)   # AutoConfig / AutoModel.from_pretrained know model_type focusclip_vit
