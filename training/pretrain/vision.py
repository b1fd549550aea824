"""The vision tower's pretraining: masked-image modelling (SimMIM) on the training images, no labels.

The images are those of the training split (what the contrastive run will see), decoded once with the
training's own frame transform into one uint8 tensor [N, 3, S, S]: about 60 MB for 5,000 images at 64
px, so each step costs only the encoder. No label, description, keypoint or heatmap is read, so the
tower knows nothing of the activities the evaluation asks for (as ImageNet weights know nothing of
MPII). The saved folder is a plain `ViTModel` (`save_pretrained`) with a `preprocessor_config.json`.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from focusclip.core.images import upright
from focusclip.core.report import Report
from focusclip.training.pretrain.config import PretrainConfig
from focusclip.training.sources import Item, load_items
from focusclip.training.transforms import apply_plan, mean_fill, plan_resize

VAL_IMAGES = 256


def tower_config(cfg: PretrainConfig):
    """The ViT shape of the pretraining config (`vision.*`, `image_size`); encoder_stride = patch size
    makes the SimMIM decoder reconstruct the full resolution."""
    from transformers import ViTConfig

    v = cfg.vision
    return ViTConfig(hidden_size=v.hidden_size, num_hidden_layers=v.num_layers, num_attention_heads=v.num_heads,
                     intermediate_size=v.intermediate_size, image_size=cfg.image_size, patch_size=v.patch_size,
                     num_channels=3, hidden_dropout_prob=v.dropout, attention_probs_dropout_prob=v.dropout,
                     initializer_range=v.init_std, encoder_stride=v.patch_size)


def frame(image: Image.Image, cfg: PretrainConfig) -> np.ndarray:
    """The contrastive run's evaluation-time frame (`data.resize`: squash, letterbox, centre crop) as
    uint8 [S, S, 3], made exactly as training.transforms makes it."""
    image = image.convert("RGB")
    plan = plan_resize(image.width, image.height, cfg.image_size, cfg.data.resize)
    return np.asarray(apply_plan(image, plan, Image.BICUBIC, mean_fill(cfg.vision.image_mean)))


def load_frames(cfg: PretrainConfig, items: list[Item], report: Report) -> torch.Tensor:
    """uint8 [N, 3, S, S] of the `items` whose image can be read (the others counted as skipped)."""
    root = Path(cfg.data.images) if cfg.data.images else None
    frames = []
    for it in items:
        try:
            img = Image.open(io.BytesIO(it.image_bytes) if it.image_bytes is not None
                             else (root / it.image if root else Path(it.image)))
            img = upright(img)          # as displayed, as focus-train and focus-eval read it
        except (OSError, ValueError, SyntaxError):
            report.skip("image missing or unreadable", it.image)
            continue
        frames.append(frame(img, cfg))
    if not frames:
        return torch.zeros(0, 3, cfg.image_size, cfg.image_size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


class MaskedImageModelling:
    """SimMIM on uint8 frames: normalise, flip at random, mask `mask_ratio` of the patches, regress their
    pixels. `loss` takes the step's sample indices; all randomness comes from the step's generator."""

    def __init__(self, cfg: PretrainConfig, report: Report):
        from transformers import ViTForMaskedImageModeling

        self.cfg = cfg
        d = cfg.data
        items = load_items(d.dataset, d.describers, d.annotations, report)
        self.train = load_frames(cfg, [it for it in items if it.split == d.train_split], report)
        self.val = load_frames(cfg, [it for it in items if it.split == d.val_split][:VAL_IMAGES], report)
        report.count("train_images", len(self.train))
        report.count("val_images", len(self.val))
        torch.manual_seed(cfg.seed)
        self.model = ViTForMaskedImageModeling(tower_config(cfg))
        self.patches = (cfg.image_size // cfg.vision.patch_size) ** 2
        v = cfg.vision
        self.mean = torch.tensor(v.image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(v.image_std).view(1, 3, 1, 1)

    def num_samples(self) -> int:
        return len(self.train)

    def _pixels(self, frames: torch.Tensor) -> torch.Tensor:   # uint8 [B, 3, S, S] → normalised float
        return (frames.float() / 255.0 - self.mean) / self.std

    def _loss(self, pixels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        mask = torch.rand(pixels.shape[0], self.patches, generator=gen) < self.cfg.mim.mask_ratio   # [B, P]
        return self.model(pixel_values=pixels, bool_masked_pos=mask).loss

    def loss(self, index: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        pixels = self._pixels(self.train[index])
        if self.cfg.mim.flip:
            flip = torch.rand(len(index), generator=gen) < 0.5
            pixels = torch.where(flip.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
        return self._loss(pixels, gen)

    @torch.no_grad()
    def validate(self) -> dict:
        """Masked-pixel L1 on held-out images with fixed masks, and the same for a model that predicts
        the image's mean colour (what the loss is worth without any learning)."""
        if not len(self.val):
            return {}
        self.model.eval()
        gen = torch.Generator().manual_seed(12345)
        pixels = self._pixels(self.val)
        mask = torch.rand(len(pixels), self.patches, generator=gen) < self.cfg.mim.mask_ratio
        loss = float(self.model(pixel_values=pixels, bool_masked_pos=mask).loss)
        mean_colour = (pixels - pixels.mean(dim=(2, 3), keepdim=True)).abs().mean()
        return {"val_masked_l1": round(loss, 5), "val_mean_colour_l1": round(float(mean_colour), 5)}

    def save(self, folder: Path) -> None:
        """A plain ViTModel folder (the encoder without SimMIM's mask token and decoder) and its
        image processor (size, mean, std), loadable with `ViTModel.from_pretrained(folder)`."""
        from transformers import ViTModel
        try:   # transformers 5: the PIL processor (the default one wants torchvision); same JSON fields
            from transformers import ViTImageProcessorPil as ViTImageProcessor
        except ImportError:
            from transformers import ViTImageProcessor

        config = tower_config(self.cfg)
        vit = ViTModel(config, add_pooling_layer=False)
        weights = {k: v for k, v in self.model.vit.state_dict().items() if k != "embeddings.mask_token"}
        vit.load_state_dict(weights, strict=True)
        vit.save_pretrained(str(folder))
        v = self.cfg.vision
        ViTImageProcessor(size={"height": self.cfg.image_size, "width": self.cfg.image_size},
                          image_mean=list(v.image_mean), image_std=list(v.image_std)).save_pretrained(str(folder))
