"""A CLIP model in the Hugging Face format, from a local folder, behind the `EvalModel` interface.

The folder is what `CLIPModel.save_pretrained` + `CLIPProcessor.save_pretrained` write (e.g. a
downloaded `openai/clip-vit-base-patch32`): `config.json`, weights, tokenizer files and
`preprocessor_config.json`. Loaded with `local_files_only=True`: nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from focusclip.data.errors import fail


class HFClip:
    """transformers `CLIPModel` + its tokenizer and image processor, normalised embeddings out."""

    def __init__(self, model, tokenizer, image_processor, name: str, device: torch.device):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name = name
        self.device = device
        crop = getattr(image_processor, "crop_size", None) or {}
        self.image_size = int(crop.get("height") or model.config.vision_config.image_size)
        self.max_text_length = int(model.config.text_config.max_position_embeddings)

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


def load_hf_clip(folder: str | Path, device: torch.device) -> HFClip:
    from transformers import AutoTokenizer, CLIPModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise fail("no config.json: not a Hugging Face model folder", str(folder),
                   "pass a folder written by CLIPModel.save_pretrained (plus its processor)")
    try:
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        processor = _image_processor(folder)
    except (OSError, ValueError) as e:
        raise fail(f"cannot load a CLIP model ({' '.join(str(e).split())[:200]})", str(folder),
                   "the folder needs config.json, weights, tokenizer files and preprocessor_config.json")
    return HFClip(model, tokenizer, processor, f"hf-clip:{folder.resolve().name}", device)


def _image_processor(folder: Path):
    """The PIL-backed CLIP processor where transformers has one (≥5: the default one needs
    torchvision, which this project does not install), else the classic CLIPImageProcessor."""
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    return Processor.from_pretrained(str(folder), local_files_only=True)
