"""Any Hugging Face dual encoder behind the `EvalModel` interface: a model whose class has
`get_image_features` and `get_text_features` (CLIPModel, SiglipModel, Siglip2Model, AltCLIPModel, …),
from a hub id (downloaded and cached the way transformers does, `--revision` to pin it) or a folder its
`save_pretrained` and its processor's wrote (`config.json`, weights, tokenizer files,
`preprocessor_config.json`). `focusclip.core.hub` loads it, or says in one line why it cannot.

Each model is used the way it was trained and the way transformers' zero-shot pipeline uses it: its
own image processor (`AutoImageProcessor`), its own tokenizer, and for the SigLIP family text padded
to the full length (`padding="max_length"`, as SigLIP was trained). Scores are cosine similarities for
every model: a CLIP's softmax over `logit_scale · cos` and a SigLIP's sigmoid of `logit_scale · cos +
logit_bias` rank the classes the same way, so `logit_scale` (exponentiated) and `logit_bias` are kept
as attributes for whoever wants probabilities (the predictions file's metadata), not applied.
"""
from __future__ import annotations

import functools
import json
from typing import Optional

import torch
import torch.nn.functional as F

from focusclip.core.errors import fail, reading
from focusclip.core.hub import Source, load, resolve, weights_sha256
from focusclip.core.hub import quiet_transformers

DAMAGED = "pass a hub id or a folder the model's save_pretrained wrote; a damaged copy needs saving again"


class HFDualEncoder:
    """A transformers dual encoder + its tokenizer and image processor, normalised embeddings out."""

    def __init__(self, model, tokenizer, image_processor, name: str, device: torch.device,
                 source: Optional[Source] = None):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name = name
        self.device = device
        self.source = source
        self.resize = "processor"       # the model's own processor makes the image what the model takes
        config = model.config
        self.model_type = str(getattr(config, "model_type", ""))
        size = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", None) or {}
        size = size if isinstance(size, dict) else {}
        vision = getattr(config, "vision_config", None)
        self.image_size = int(size.get("height") or size.get("shortest_edge") or getattr(vision, "image_size", 224))
        text = getattr(config, "text_config", None)
        self.max_text_length = int(getattr(text, "max_position_embeddings", 77))
        # the SigLIP family is trained on text padded to its full length (transformers' zero-shot pipeline
        # does the same); the CLIPs on text padded to the batch's longest
        self.pad_to_max = "siglip" in self.model_type
        self.logit_scale = param_value(getattr(model, "logit_scale", None), exp=True)
        self.logit_bias = param_value(getattr(model, "logit_bias", None))

    @functools.cached_property
    def preprocess_key(self) -> str:
        """Equal for models whose processors make the same pixels of an image (eval.zeroshot)."""
        return json.dumps({"processor": self.image_processor.to_dict()}, sort_keys=True, default=str)

    @functools.cached_property
    def sha256(self) -> Optional[str]:
        """SHA-256 of the weights file (see `focusclip.core.hub.weights_sha256`)."""
        return weights_sha256(self.source) if self.source is not None else None

    @property
    def path(self) -> Optional[str]:
        return self.source.name if self.source is not None else None

    def preprocess(self, image):
        """PIL image → what the image encoder takes, with the model's own processor: pixels [3, S, S],
        or a dict of per-image tensors when the processor gives more (SigLIP 2's patch masks)."""
        out = self.image_processor(images=image.convert("RGB"), return_tensors="pt")
        if set(out.keys()) == {"pixel_values"}:
            return out["pixel_values"][0]
        return {k: v[0] for k, v in out.items()}

    @torch.no_grad()
    def encode_images(self, pixels) -> torch.Tensor:
        """A batch of `preprocess` outputs (stacked by the DataLoader) → L2-normalised [B, D]."""
        inputs = pixels if isinstance(pixels, dict) else {"pixel_values": pixels}
        feats = self.model.get_image_features(**{k: v.to(self.device) for k, v in inputs.items()})
        return F.normalize(_pooled(feats).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        padding = "max_length" if self.pad_to_max else True
        outs = []
        for i in range(0, len(texts), batch_size):
            tok = self.tokenizer(list(texts[i:i + batch_size]), padding=padding, truncation=True,
                                 max_length=self.max_text_length, return_tensors="pt")
            # what the tokenizer gives (SigLIP's gives no attention mask, as the pipeline passes it)
            inputs = {k: tok[k].to(self.device) for k in ("input_ids", "attention_mask") if k in tok}
            outs.append(F.normalize(_pooled(self.model.get_text_features(**inputs)).float(), dim=-1))
        return torch.cat(outs)


def _pooled(out) -> torch.Tensor:
    """transformers ≥5 returns a model output whose `pooler_output` is the projected embedding;
    4.x returns the tensor itself."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def param_value(param, exp: bool = False) -> Optional[float]:
    """A scalar parameter (logit scale or bias) as a float, exponentiated with `exp`; None when absent."""
    if param is None:
        return None
    value = param.detach().float().reshape(-1)[0]
    return float(value.exp() if exp else value)


def load_dual_encoder(name: str, device: torch.device, revision: Optional[str] = None, *,
                      key: str = "MODEL", what: str = "dual encoder", prefix: Optional[str] = None) -> HFDualEncoder:
    """A dual encoder from a hub id or a save_pretrained folder (with its tokenizer and image processor),
    named `<prefix>:<id or folder name>` (prefix: `hf-<model_type>`, e.g. hf-clip, hf-siglip)."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    kw = dict(what=what, key=key)
    source = resolve(str(name), revision, **kw)
    # `load` makes a file or download error one line; a damaged file can raise more (KeyError, RuntimeError)
    with reading(name, f"the Hugging Face {what}", DAMAGED), quiet_transformers():
        model = load(source, AutoModel.from_pretrained, **kw)
    if not (callable(getattr(model, "get_image_features", None)) and callable(getattr(model, "get_text_features", None))):
        raise fail(f"{what}: {type(model).__name__} has no get_image_features/get_text_features, so it is not "
                   f"a dual encoder", key, "pass a CLIP-style model (CLIP, SigLIP, AltCLIP, …) or a focus-train checkpoint")
    with reading(name, f"the Hugging Face {what}", DAMAGED):
        tokenizer = load(source, AutoTokenizer.from_pretrained, **kw)
        processor = load(source, AutoImageProcessor.from_pretrained, **kw)
    label = source.name if source.kind == "hub" else source.name.rstrip("/").rsplit("/", 1)[-1]
    prefix = prefix or f"hf-{model.config.model_type}"
    return HFDualEncoder(model, tokenizer, processor, f"{prefix}:{label}", device, source)
