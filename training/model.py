"""FocusCLIP (Khan et al. 2024) and its CLIP baseline: a ViT image tower and a BERT-family text tower,
each projected to `embed_dim`; FocusCLIP adds a third view, the image weighted by its ROI heatmap.

The masked view is `image * (alpha + heatmap * (1 - alpha))`, computed on the [0, 1] pixels (the
normalised input is un-normalised, weighted and normalised again), so the background fades towards
black as alpha → 0. `alpha = sigmoid(alpha_logit)` keeps it in (0, 1) without clamping, so it always
receives a gradient. At inference the model is plain CLIP: `encode_image` / `encode_text`.
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn


class FocusOutput(NamedTuple):
    """Unit-norm embeddings [B, D] of the three views (`masked` None for CLIP), and scalars."""
    image: torch.Tensor
    text: torch.Tensor
    masked: Optional[torch.Tensor]
    alpha: Optional[torch.Tensor]
    temperature: torch.Tensor


class VisionTower(nn.Module):
    """ViT → the [CLS] token of the last (layer-normed) hidden state → linear projection."""

    def __init__(self, vit: nn.Module, embed_dim: int, image_size: int):
        super().__init__()
        self.vit = vit
        self.proj = nn.Linear(vit.config.hidden_size, embed_dim, bias=False)
        # a pretrained ViT at another resolution: interpolate its position embeddings
        self.interpolate = int(vit.config.image_size) != int(image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:   # [B, 3, S, S] → [B, D]
        h = self.vit(pixel_values=pixels, interpolate_pos_encoding=self.interpolate).last_hidden_state
        return self.proj(h[:, 0])


class TextTower(nn.Module):
    """BERT-family encoder → mean over real tokens (attention mask), as in the paper → projection."""

    def __init__(self, encoder: nn.Module, embed_dim: int):
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Linear(encoder.config.hidden_size, embed_dim, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # [B, T] → [B, D]
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
        m = attention_mask.unsqueeze(-1).float()                                              # [B, T, 1]
        pooled = (h.float() * m).sum(1) / m.sum(1).clamp_min(1.0)   # fp32 sum: bf16 drifts over 500 tokens
        return self.proj(pooled)


class FocusCLIP(nn.Module):
    def __init__(self, vit: nn.Module, text_encoder: nn.Module, *, name: str = "focusclip",
                 embed_dim: int = 512, triple: bool = True, shared_encoder: bool = True,
                 alpha_init: float = 0.5, image_size: int = 224, image_mean=(0.5, 0.5, 0.5),
                 image_std=(0.5, 0.5, 0.5), max_text_length: int = 512, temperature: float = 0.5,
                 learn_temperature: bool = False):
        super().__init__()
        self.name, self.embed_dim, self.triple, self.shared_encoder = name, embed_dim, triple, shared_encoder
        self.image_size, self.max_text_length, self.learn_temperature = image_size, max_text_length, learn_temperature
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.vision = VisionTower(vit, embed_dim, image_size)
        self.text = TextTower(text_encoder, embed_dim)
        if triple:
            self.alpha_logit = nn.Parameter(torch.tensor(math.log(alpha_init / (1 - alpha_init))))
            if not shared_encoder:
                self.masked_vision = copy.deepcopy(self.vision)
        log_t = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)
        self.register_buffer("_mean", torch.tensor(self.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.image_std).view(1, 3, 1, 1), persistent=False)

    # -- inference API (plain CLIP) --------------------------------------------------------------
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:          # [B, 3, S, S] → [B, D]
        return F.normalize(self.vision(pixels), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(input_ids, attention_mask), dim=-1)  # [B, T] → [B, D]

    # -- training ------------------------------------------------------------------------------
    @property
    def alpha(self) -> Optional[torch.Tensor]:
        return torch.sigmoid(self.alpha_logit) if self.triple else None

    def mask_pixels(self, pixels: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, S, S] (normalised), heatmaps [B, S, S] in [0, 1] → the weighted view,
        normalised again: ((x·std + mean) · (alpha + h·(1 − alpha)) − mean) / std."""
        alpha = self.alpha
        weight = alpha + heatmaps.unsqueeze(1).to(pixels.dtype) * (1 - alpha)    # [B, 1, S, S]
        raw = pixels * self._std + self._mean
        return (raw * weight - self._mean) / self._std

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                heatmaps: Optional[torch.Tensor] = None) -> FocusOutput:
        image = self.encode_image(pixels)
        text = self.encode_text(input_ids, attention_mask)
        masked = None
        if self.triple:
            assert heatmaps is not None, "FocusCLIP (triple) needs heatmaps [B, S, S]"
            tower = self.vision if self.shared_encoder else self.masked_vision
            masked = F.normalize(tower(self.mask_pixels(pixels, heatmaps)), dim=-1)
        return FocusOutput(image, text, masked, self.alpha, self.log_temperature.exp())

    # -- (de)serialisation ----------------------------------------------------------------------
    def config_dict(self) -> dict:
        """Everything needed to rebuild this model without the YAML (checkpoint `config.json`)."""
        return {"name": self.name, "embed_dim": self.embed_dim, "triple": self.triple,
                "shared_encoder": self.shared_encoder, "image_size": self.image_size,
                "image_mean": list(self.image_mean), "image_std": list(self.image_std),
                "max_text_length": self.max_text_length, "learn_temperature": self.learn_temperature,
                "temperature": float(self.log_temperature.detach().exp()),
                "vision": self.vision.vit.config.to_dict(), "text": self.text.encoder.config.to_dict()}

    @classmethod
    def from_config_dict(cls, cfg: dict) -> "FocusCLIP":
        """Random-init skeleton with the shapes of `cfg` (weights are loaded afterwards)."""
        from transformers import ViTConfig, ViTModel

        vit = ViTModel(ViTConfig.from_dict(cfg["vision"]), add_pooling_layer=False)
        text = text_model_from_config(cfg["text"])
        return cls(vit, text, name=cfg.get("name", "focusclip"), embed_dim=cfg["embed_dim"],
                   triple=cfg["triple"], shared_encoder=cfg.get("shared_encoder", True),
                   image_size=cfg["image_size"], image_mean=cfg["image_mean"], image_std=cfg["image_std"],
                   max_text_length=cfg["max_text_length"], temperature=cfg.get("temperature", 0.5),
                   learn_temperature=cfg.get("learn_temperature", False))


def text_model_from_config(d: dict) -> nn.Module:
    """A BERT-family encoder (any `model_type` AutoModel knows) from its config dict, no pooler."""
    from transformers import AutoConfig, AutoModel

    d = dict(d)
    config = AutoConfig.for_model(d.pop("model_type", "bert"), **d)
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:   # encoders without a pooler option
        return AutoModel.from_config(config)
