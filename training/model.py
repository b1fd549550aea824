"""FocusCLIP (Khan et al. 2024) and its CLIP baseline as a transformers model: a ViT image tower and a
BERT-family text tower, each projected to `embed_dim`; FocusCLIP adds a third view, the image weighted
by its ROI heatmap.

The masked view is `image * (alpha + heatmap * (1 - alpha))`, computed on the [0, 1] pixels (the
normalised input is un-normalised, weighted and normalised again), so the background fades towards
black as alpha → 0. With a shared tower the masked view leaves batch norm's running statistics
alone (training/vit.py: `batch_statistics_frozen`), so evaluation normalises with the clean images'
statistics only. `alpha = sigmoid(alpha_logit)` keeps it in (0, 1) without clamping, so it always
receives a gradient; `config.alpha_trainable = False` fixes it at `alpha_init` instead (any value in
[0, 1]: the controls of benchmarks/focus_effect.py). A learnable temperature is `exp(log_temperature)`
floored at MIN_TEMPERATURE, as CLIP caps its logit scale at 100; `config.temperature_per_pair` learns
one per loss pair (the easy masked–image pair then cannot pull the image–text pair's down). At
inference the model is plain CLIP: `encode_image` / `encode_text` (unit norm), or
`get_image_features` / `get_text_features` (the projections before normalising, as `CLIPModel`).

`FocusCLIPModel` is a `PreTrainedModel` (`save_pretrained`, `from_pretrained(folder_or_hub_id)`,
`push_to_hub`); importing this module registers it (and, through focusclip.training.vit, the
convolutional-stem tower `focusclip_vit`) with `AutoConfig`/`AutoModel`, as a model's own module does.
The state-dict keys are those of the checkpoints written before it existed, so those load unchanged.

Fine-tuning a pretrained dual encoder (`model.init`: a `CLIPModel`, `SiglipModel`, … with
`get_image_features` / `get_text_features`) is the same class holding that model whole as `self.dual`
(`config.base` is its config dict) instead of two towers: one model class, so checkpoints, resume,
evaluation, the card and push take it unchanged. Its projections, its logit scale (τ = 1 / exp(logit
scale), floored at MIN_TEMPERATURE as CLIP clamps the scale at 100) and SigLIP's logit bias are the
pretrained ones and keep learning; the masked view goes through its image tower (shared). SigLIP
text is padded to its full length (it pools the last position, as it was trained and as transformers'
zero-shot pipeline calls it) whatever padding the caller used, and the attention mask reaches the
base model only where its own tokenizer gives one (`config.base_text_mask`; SigLIP's does not).
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from focusclip.training.hf_config import FocusCLIPConfig
from focusclip.training.loss import PAIRS
from focusclip.training.vit import batch_statistics_frozen   # (also registers model_type focusclip_vit)

MIN_TEMPERATURE = 0.01   # CLIP (Radford et al. 2021) clamps its logit scale 1/τ at 100


class FocusOutput(NamedTuple):
    """Unit-norm embeddings [B, D] of the three views (`masked` None for CLIP), and scalars."""
    image: torch.Tensor
    text: torch.Tensor
    masked: Optional[torch.Tensor]
    alpha: Optional[torch.Tensor]
    temperature: torch.Tensor   # [] one τ for every pair, or [P] one per pair (training/loss.py PAIRS order)
    bias: Optional[torch.Tensor] = None   # [] SigLIP's logit bias (`loss.kind: siglip`), None otherwise


class VisionTower(nn.Module):
    """ViT → the [CLS] token of the last (layer-normed) hidden state, or the mean of its patch tokens
    (`config.pooling: mean`, training/vit.py) → linear projection."""

    def __init__(self, vit: nn.Module, embed_dim: int, image_size: int):
        super().__init__()
        self.vit = vit
        self.proj = nn.Linear(vit.config.hidden_size, embed_dim, bias=False)
        # a pretrained ViT at another resolution: interpolate its position embeddings
        self.interpolate = int(vit.config.image_size) != int(image_size)
        self.mean_pool = getattr(vit.config, "pooling", "cls") == "mean"   # focusclip_vit's option

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:   # [B, 3, S, S] → [B, D]
        h = self.vit(pixel_values=pixels, interpolate_pos_encoding=self.interpolate).last_hidden_state
        return self.proj(h[:, 1:].mean(1) if self.mean_pool else h[:, 0])


class TextTower(nn.Module):
    """BERT-family encoder → mean over real tokens (attention mask), as in the paper → projection."""

    def __init__(self, encoder: nn.Module, embed_dim: int):
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Linear(encoder.config.hidden_size, embed_dim, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # [B, T] → [B, D]
        h = self.encoder(input_ids=input_ids,
                         attention_mask=encoder_mask(self.encoder, attention_mask)).last_hidden_state  # [B, T, H]
        m = attention_mask.unsqueeze(-1).float()                                              # [B, T, 1]
        pooled = (h.float() * m).sum(1) / m.sum(1).clamp_min(1.0)   # fp32 sum: bf16 drifts over 500 tokens
        return self.proj(pooled.to(self.proj.weight.dtype))


def encoder_mask(encoder: nn.Module, attention_mask: torch.Tensor) -> torch.Tensor:
    """The padding mask [B, T] as the encoder's attention takes it without a host sync. Given a 2-D
    mask, transformers' SDPA path first asks `mask.all()` (a GPU→host read every forward) to drop a
    mask without padding; a ready 4-D boolean mask [B, 1, 1, T] (True = attend) is passed through as
    is, and gives the same attention. Other attention implementations get the 2-D mask."""
    if getattr(encoder.config, "_attn_implementation", None) == "sdpa":
        return attention_mask[:, None, None, :].bool()
    return attention_mask


def vision_model_from_config(d: dict) -> nn.Module:
    """A ViT (no pooler) with the shapes of its config dict, a `focusclip_vit` one (convolutional
    stem) where the dict says so; random init."""
    from transformers import ViTConfig, ViTModel

    from focusclip.training.vit import FocusViTConfig, FocusViTModel

    if d.get("model_type") == FocusViTConfig.model_type:
        return FocusViTModel(FocusViTConfig.from_dict(d), add_pooling_layer=False)
    return ViTModel(ViTConfig.from_dict(d), add_pooling_layer=False)


def dual_from_config(d: dict) -> nn.Module:
    """A dual encoder (CLIPModel, SiglipModel, …) from its config dict (with `model_type`), random init."""
    d = dict(d)
    return AutoModel.from_config(AutoConfig.for_model(d.pop("model_type"), **d))


def _features(out) -> torch.Tensor:
    """transformers ≥5 returns an output whose `pooler_output` is the projected embedding; 4.x the tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def text_model_from_config(d: dict) -> nn.Module:
    """A BERT-family encoder (any `model_type` AutoModel knows) from its config dict, no pooler."""
    d = dict(d)
    config = AutoConfig.for_model(d.pop("model_type", "bert"), **d)
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:   # encoders without a pooler option
        return AutoModel.from_config(config)


class FocusCLIPModel(PreTrainedModel):
    """FocusCLIP, or CLIP when `config.triple` is false. `FocusCLIPModel(config)` builds random towers
    with the config's shapes; `from_towers(vit, text_encoder, …)` wraps towers already built (the
    trainer's pretrained ones)."""
    config_class = FocusCLIPConfig
    base_model_prefix = "focusclip"
    main_input_name = "pixel_values"

    def __init__(self, config: FocusCLIPConfig, vision_model: Optional[nn.Module] = None,
                 text_model: Optional[nn.Module] = None, dual_model: Optional[nn.Module] = None):
        super().__init__(config)
        if config.base:
            self.dual = dual_model if dual_model is not None else dual_from_config(config.base)
            self._siglip_text = "siglip" in str(config.base.get("model_type", ""))
            if config.triple and config.alpha_trainable:
                self.alpha_logit = nn.Parameter(torch.tensor(_logit(config.alpha_init)))
            elif config.triple:
                self.register_buffer("alpha_fixed", torch.tensor(float(config.alpha_init)))
            self.post_init()
            return
        vision_model = vision_model if vision_model is not None else vision_model_from_config(config.vision)
        text_model = text_model if text_model is not None else text_model_from_config(config.text)
        self.vision = VisionTower(vision_model, config.embed_dim, config.image_size)
        self.text = TextTower(text_model, config.embed_dim)
        if config.triple and config.alpha_trainable:
            self.alpha_logit = nn.Parameter(torch.tensor(_logit(config.alpha_init)))
        elif config.triple:
            self.register_buffer("alpha_fixed", torch.tensor(float(config.alpha_init)))
        if config.triple:
            if not config.shared_encoder:
                self.masked_vision = copy.deepcopy(self.vision)
        shape = (len(PAIRS),) if config.temperature_per_pair else ()
        log_t = torch.full(shape, math.log(config.contrastive_temperature))
        if config.learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)
        self.post_init()

    @classmethod
    def from_dual(cls, dual: nn.Module, processor: Optional[dict] = None, text_mask: bool = True,
                  **options) -> "FocusCLIPModel":
        """Wrap a loaded dual encoder (CLIPModel, SiglipModel, …); `processor` its image processor's
        `to_dict()`; `text_mask`: its tokenizer gives an attention mask; `options` are FocusCLIPConfig
        fields (name, triple, alpha_init, image_size, …)."""
        base = dual.config.to_dict()
        embed_dim = getattr(dual.config, "projection_dim", None) or dual.config.text_config.hidden_size
        config = FocusCLIPConfig(base=base, base_processor=processor, base_text_mask=text_mask, embed_dim=embed_dim,
                                 learn_temperature=True, **options)
        return cls(config, dual_model=dual)

    @classmethod
    def from_towers(cls, vit: nn.Module, text_encoder: nn.Module, **options) -> "FocusCLIPModel":
        """Wrap built towers; `options` are FocusCLIPConfig fields (name, embed_dim, triple, …)."""
        config = FocusCLIPConfig(vision=vit.config.to_dict(), text=text_encoder.config.to_dict(), **options)
        return cls(config, vision_model=vit, text_model=text_encoder)

    def _init_weights(self, module: nn.Module) -> None:
        """Only what this class adds: the towers initialise themselves (or were loaded), and the
        projections keep torch's default init from their construction, as before this class existed."""
        if module is self:
            if self.config.base:   # the dual encoder was loaded (or initialises itself)
                if self.config.triple and self.config.alpha_trainable:
                    with torch.no_grad():
                        self.alpha_logit.fill_(_logit(self.config.alpha_init))
                return
            with torch.no_grad():
                if self.config.triple and self.config.alpha_trainable:
                    self.alpha_logit.fill_(_logit(self.config.alpha_init))
                self.log_temperature.fill_(math.log(self.config.contrastive_temperature))

    # -- inference API (plain CLIP) --------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:   # [B, 3, S, S] → [B, D]
        if self.config.base:
            return _features(self.dual.get_image_features(pixel_values=pixel_values))
        return self.vision(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.config.base:                                                    # [B, T] → [B, D]
            if self._siglip_text:   # SigLIP pools the last position: text padded to the full length
                text = self.config.base["text_config"]
                pad = max(0, int(text["max_position_embeddings"]) - input_ids.shape[1])
                input_ids = F.pad(input_ids, (0, pad), value=int(text.get("pad_token_id") or 0))
                attention_mask = F.pad(attention_mask, (0, pad), value=0)
            mask = attention_mask if self.config.base_text_mask else None   # as its own tokenizer feeds it
            return _features(self.dual.get_text_features(input_ids=input_ids, attention_mask=mask))
        return self.text(input_ids, attention_mask)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:              # [B, 3, S, S] → [B, D], unit norm
        return F.normalize(self.get_image_features(pixels), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.get_text_features(input_ids, attention_mask), dim=-1)   # [B, T] → [B, D], unit norm

    # -- training ------------------------------------------------------------------------------
    @property
    def alpha(self) -> Optional[torch.Tensor]:
        if not self.config.triple:
            return None
        return torch.sigmoid(self.alpha_logit) if self.config.alpha_trainable else self.alpha_fixed

    def mask_pixels(self, pixels: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, S, S] (normalised), heatmaps [B, S, S] in [0, 1] → the weighted view,
        normalised again: ((x·std + mean) · (alpha + h·(1 − alpha)) − mean) / std."""
        mean = pixels.new_tensor(self.config.image_mean).view(1, 3, 1, 1)
        std = pixels.new_tensor(self.config.image_std).view(1, 3, 1, 1)
        alpha = self.alpha
        weight = alpha + heatmaps.unsqueeze(1).to(pixels.dtype) * (1 - alpha)    # [B, 1, S, S]
        raw = pixels * std + mean
        return (raw * weight - mean) / std

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                heatmaps: Optional[torch.Tensor] = None) -> FocusOutput:
        image = self.encode_image(pixels)
        text = self.encode_text(input_ids, attention_mask)
        masked = None
        if self.config.triple:
            assert heatmaps is not None, "FocusCLIP (triple) needs heatmaps [B, S, S]"
            if self.config.base:
                masked = self.get_image_features(self.mask_pixels(pixels, heatmaps))
            elif self.config.shared_encoder:   # running statistics from the clean pass only (training/vit.py)
                with batch_statistics_frozen(self.vision):
                    masked = self.vision(self.mask_pixels(pixels, heatmaps))
            else:
                masked = self.masked_vision(self.mask_pixels(pixels, heatmaps))
            masked = F.normalize(masked, dim=-1)
        bias = getattr(self.dual, "logit_bias", None) if self.config.base else None
        return FocusOutput(image, text, masked, self.alpha, self.temperatures,
                           None if bias is None else bias.reshape(()))

    @property
    def temperatures(self) -> torch.Tensor:
        """τ of the loss, [] or [P] one per pair (`config.temperature_per_pair`, PAIRS order): fixed,
        or learnt in log space and floored at MIN_TEMPERATURE; a dual encoder's 1 / exp(logit scale)."""
        if self.config.base:
            return (-self.dual.logit_scale.reshape(())).exp().clamp(min=MIN_TEMPERATURE)
        t = self.log_temperature.exp()
        return t.clamp(min=MIN_TEMPERATURE) if self.config.learn_temperature else t

    @property
    def temperature(self) -> torch.Tensor:
        """The image–text pair's τ, a scalar (the only one unless `config.temperature_per_pair`)."""
        t = self.temperatures
        return t[0] if t.dim() else t

    # -- the config as a plain dict (the checkpoint layout before this class) ----------------------
    def config_dict(self) -> dict:
        """The model's config with the current temperature (learnable τ moves during training)."""
        d = self.config.to_focus_dict()
        d["temperature"] = float(self.temperature.detach())
        return d


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def register_auto_classes() -> None:
    """Make `AutoConfig`/`AutoModel.from_pretrained` know `model_type: focusclip`."""
    AutoConfig.register(FocusCLIPConfig.model_type, FocusCLIPConfig, exist_ok=True)
    AutoModel.register(FocusCLIPConfig, FocusCLIPModel, exist_ok=True)


register_auto_classes()
