"""A CLIP model in the Hugging Face format behind the `EvalModel` interface: a hub id (e.g.
`openai/clip-vit-base-patch32`, downloaded and cached the way transformers does, `--revision` to pin
it) or a folder written by `CLIPModel.save_pretrained` + `CLIPProcessor.save_pretrained`
(`config.json`, weights, tokenizer files, `preprocessor_config.json`). `focusclip.core.hub` loads it,
or says in one line why it cannot.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
import torch.nn.functional as F

from focusclip.core.errors import reading
from focusclip.core.hub import Source, load, resolve, weights_sha256

DAMAGED = "pass a hub id or a folder the CLIP's save_pretrained wrote; a damaged copy needs saving again"


class HFClip:
    """transformers `CLIPModel` + its tokenizer and image processor, normalised embeddings out."""

    def __init__(self, model, tokenizer, image_processor, name: str, device: torch.device,
                 source: Optional[Source] = None):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name = name
        self.device = device
        self.source = source
        self.resize = "processor"       # the model's own processor (resize, centre crop) makes it S×S
        crop = getattr(image_processor, "crop_size", None) or {}
        self.image_size = int(crop.get("height") or model.config.vision_config.image_size)
        self.max_text_length = int(model.config.text_config.max_position_embeddings)

    @functools.cached_property
    def sha256(self) -> Optional[str]:
        """SHA-256 of the weights file (see `focusclip.core.hub.weights_sha256`)."""
        return weights_sha256(self.source) if self.source is not None else None

    @property
    def path(self) -> Optional[str]:
        return self.source.name if self.source is not None else None

    def preprocess(self, image) -> torch.Tensor:
        """PIL image → [3, S, S] with the model's own processor (resize, centre crop, normalise)."""
        out = self.image_processor(images=image.convert("RGB"), return_tensors="pt")
        return out["pixel_values"][0]

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        feats = self.model.get_image_features(pixel_values=pixels.to(self.device))
        return F.normalize(_pooled(feats).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        outs = []
        for i in range(0, len(texts), batch_size):
            tok = self.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_text_length, return_tensors="pt")
            feats = self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                                 attention_mask=tok["attention_mask"].to(self.device))
            outs.append(F.normalize(_pooled(feats).float(), dim=-1))
        return torch.cat(outs)


def _pooled(out) -> torch.Tensor:
    """transformers ≥5 returns a model output whose `pooler_output` is the projected embedding;
    4.x returns the tensor itself."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def load_hf_clip(name: str, device: torch.device, revision: Optional[str] = None) -> HFClip:
    """A CLIP from a hub id or a save_pretrained folder (with its tokenizer and image processor)."""
    from transformers import AutoTokenizer, CLIPModel

    kw = dict(what="CLIP model", key="--hf-clip")
    source = resolve(str(name), revision, **kw)
    # `load` makes a file or download error one line; a damaged file can raise more (KeyError, RuntimeError)
    with reading(name, "the Hugging Face CLIP model", DAMAGED):
        model = load(source, CLIPModel.from_pretrained, **kw)
        tokenizer = load(source, AutoTokenizer.from_pretrained, **kw)
        processor = load(source, _image_processor().from_pretrained, **kw)
    label = source.name if source.kind == "hub" else source.name.rstrip("/").rsplit("/", 1)[-1]
    return HFClip(model, tokenizer, processor, f"hf-clip:{label}", device, source)


def _image_processor():
    """The PIL-backed CLIP processor where transformers has one (≥5: the default one needs
    torchvision, which this project does not install), else the classic CLIPImageProcessor."""
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    return Processor
