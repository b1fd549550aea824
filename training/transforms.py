"""The one resize/crop used for images, heatmaps and keypoints, in training and at evaluation.

Shorter side → S, then an S×S crop (centre, or a random offset when training with random_crop).
The same `Crop` is applied to the image, its heatmap PNG and its keypoints, so they stay aligned.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Crop:
    """Resize (w, h) → (new_w, new_h), then cut the window [x0, x0+S) × [y0, y0+S)."""
    width: int
    height: int
    new_width: int
    new_height: int
    x0: int
    y0: int
    size: int

    def resized_kpts(self, kpts: np.ndarray) -> np.ndarray:
        """[..., 2] original pixel coords → coords in the resized, uncropped image (pixel centres
        stay centres). Unlabelled joints come along unchanged in meaning (their vis is 0)."""
        sx, sy = self.new_width / self.width, self.new_height / self.height
        out = np.array(kpts, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] + 0.5) * sx - 0.5
        out[..., 1] = (out[..., 1] + 0.5) * sy - 0.5
        return out

    def kpts(self, kpts: np.ndarray) -> np.ndarray:
        """[..., 2] original pixel coords → coords in the S×S crop."""
        out = self.resized_kpts(kpts)
        out[..., 0] -= self.x0
        out[..., 1] -= self.y0
        return out


def plan_crop(width: int, height: int, size: int, rng: np.random.Generator | None = None) -> Crop:
    """The shorter side becomes `size`; centre crop, or a uniformly random one when `rng` is given."""
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if rng is None:
        x0, y0 = (new_w - size) // 2, (new_h - size) // 2
    else:
        x0, y0 = int(rng.integers(0, new_w - size + 1)), int(rng.integers(0, new_h - size + 1))
    return Crop(width, height, new_w, new_h, x0, y0, size)


def apply_crop(img: Image.Image, crop: Crop, resample: int) -> Image.Image:
    img = img.resize((crop.new_width, crop.new_height), resample=resample)
    return img.crop((crop.x0, crop.y0, crop.x0 + crop.size, crop.y0 + crop.size))


def to_pixels(img: Image.Image, mean, std) -> torch.Tensor:
    """RGB PIL (S×S) → normalised FloatTensor [3, S, S]."""
    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)  # [S, S, 3]
    x = arr.permute(2, 0, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def pil_to_pixels(image: Image.Image, size: int, mean, std) -> torch.Tensor:
    """Eval transform: RGB, shorter side → size (bicubic), centre crop, normalise → [3, S, S]."""
    image = image.convert("RGB")
    crop = plan_crop(image.width, image.height, size)
    return to_pixels(apply_crop(image, crop, Image.BICUBIC), mean, std)


def heatmap_png_to_tensor(png: Image.Image, crop: Crop) -> torch.Tensor:
    """8-bit heatmap PNG at the image's size → [S, S] in [0, 1], resized/cropped like the image."""
    hm = png.convert("L")
    if hm.size != (crop.width, crop.height):
        # a PNG at another size than the image: stretch it onto the image first
        hm = hm.resize((crop.width, crop.height), resample=Image.BILINEAR)
    hm = apply_crop(hm, crop, Image.BILINEAR)
    return torch.from_numpy(np.asarray(hm, dtype=np.float32) / 255.0)
