"""`FocusCLIPConfig`: the `config.json` of a FocusCLIP model folder (`model_type: focusclip`).

Its fields are the keys of the `config.json` that checkpoints carried before this class existed
(name, embed_dim, triple, …, `vision` and `text` as the towers' own config dicts), so an old
`config.json` reads into it unchanged. Two fields are new: `provenance` (where each tower's initial
weights, the tokenizer and the training data came from; the model card is written from it) and
`training_step`. The NT-Xent temperature is `contrastive_temperature` (`temperature` is a generation
parameter to transformers, refused in a model config); the old key is read into it.
`temperature_per_pair` (new, false in older folders) gives each loss pair its own learnt τ.
`base` (new, null in older folders) is the config dict of a pretrained dual encoder (`CLIPModel`,
`SiglipModel`, … with its `model_type`) the model holds whole instead of two towers (`model.init`,
training/model.py); `base_processor` is that model's image processor (`to_dict()`), kept so an
export as the base class (`focus-train export --as-base`) writes it back unchanged;
`base_text_mask` whether that model's tokenizer gives it an attention mask (SigLIP's does not).
"""
from __future__ import annotations

from typing import Optional

from transformers import PretrainedConfig

# config.json keys of the layout before FocusCLIPConfig (training.checkpoint wrote them by hand)
FOCUS_KEYS = ("name", "embed_dim", "triple", "shared_encoder", "image_size", "image_mean", "image_std",
              "max_text_length", "learn_temperature", "temperature", "vision", "text")


class FocusCLIPConfig(PretrainedConfig):
    model_type = "focusclip"

    def __init__(self, name: str = "focusclip", embed_dim: int = 512, triple: bool = True,
                 shared_encoder: bool = True, alpha_init: float = 0.5, image_size: int = 224,
                 image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5), max_text_length: int = 512,
                 contrastive_temperature: float = 0.5, learn_temperature: bool = False, vision: Optional[dict] = None,
                 text: Optional[dict] = None, provenance: Optional[dict] = None,
                 training_step: Optional[int] = None, alpha_trainable: bool = True,
                 temperature_per_pair: bool = False, base: Optional[dict] = None,
                 base_processor: Optional[dict] = None, base_text_mask: bool = True, **kwargs):
        self.name = name
        self.embed_dim = int(embed_dim)
        self.triple = bool(triple)
        self.shared_encoder = bool(shared_encoder)
        self.alpha_init = float(alpha_init)
        self.alpha_trainable = bool(alpha_trainable)   # false: alpha stays alpha_init (a control)
        self.image_size = int(image_size)
        self.image_mean = [float(x) for x in image_mean]
        self.image_std = [float(x) for x in image_std]
        self.max_text_length = int(max_text_length)
        # `temperature` (the old key, and from_towers(…, temperature=…)) is a generation parameter to
        # transformers, which refuses it in a model config
        self.contrastive_temperature = float(kwargs.pop("temperature", contrastive_temperature))
        self.learn_temperature = bool(learn_temperature)
        # one learnt τ per loss pair (training/loss.py PAIRS order); contrastive_temperature is then
        # the image–text pair's, the one zero-shot scoring would use
        self.temperature_per_pair = bool(temperature_per_pair)
        self.vision = dict(vision or {"image_size": image_size})   # ViTConfig.to_dict()
        self.text = dict(text or {"model_type": "bert"})           # the text encoder's config dict
        self.provenance = dict(provenance or {})
        self.training_step = training_step
        self.base = dict(base) if base else None                   # e.g. CLIPConfig.to_dict()
        self.base_processor = dict(base_processor) if base_processor else None
        self.base_text_mask = bool(base_text_mask)   # the base's tokenizer gives an attention mask (SigLIP's not)
        super().__init__(**kwargs)

    def to_focus_dict(self) -> dict:
        """The old-layout `config.json` keys (what `LoadedModel` and older code read)."""
        d = {k: getattr(self, k) for k in FOCUS_KEYS if k != "temperature"}
        return {**d, "temperature": self.contrastive_temperature}

    @classmethod
    def from_focus_dict(cls, d: dict) -> "FocusCLIPConfig":
        """From an old-layout `config.json` (no `model_type`) or a new one."""
        d = {k: v for k, v in d.items() if k not in ("model_type", "architectures", "transformers_version")}
        return cls(**d)
