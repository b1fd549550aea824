"""The one image geometry (`data.resize`) used for images, heatmaps and keypoints, in training and at
evaluation.

Three ways to make a W×H frame S×S, all written as "resize to (W', H'), then take the S×S window whose
top-left corner is (x0, y0) in the resized frame" (window parts outside the frame are padding):
  squash     the whole frame → S×S, aspect ratio not kept (the reference code: every joint, every
             person and the whole heatmap stay in the picture);
  letterbox  the longer side → S, centred on an S×S canvas (padding: the normalisation mean for
             pixels, 0 for heatmaps), nothing lost and shapes kept;
  crop       the shorter side → S, then an S×S crop (centre, or random with data.random_crop): a
             1280×720 MPII frame loses 44% of its width.
The same `Plan` transforms the image, its heatmap PNG (or the heatmap rendered from keypoints) and
the keypoints, so they stay aligned.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

RESIZE_MODES = ("squash", "letterbox", "crop")


@dataclass(frozen=True)
class Plan:
    """Resize (width, height) → (new_width, new_height), then cut the window [x0, x0+S) × [y0, y0+S)
    of the resized frame; x0 or y0 < 0 (letterbox) or a window past the frame means padding."""
    width: int
    height: int
    new_width: int
    new_height: int
    x0: int
    y0: int
    size: int

    def resized_kpts(self, kpts: np.ndarray) -> np.ndarray:
        """[..., 2] original pixel coords → coords in the resized frame (pixel centres stay centres).
        Unlabelled joints come along unchanged in meaning (their vis is 0)."""
        sx, sy = self.new_width / self.width, self.new_height / self.height
        out = np.array(kpts, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] + 0.5) * sx - 0.5
        out[..., 1] = (out[..., 1] + 0.5) * sy - 0.5
        return out

    def kpts(self, kpts: np.ndarray) -> np.ndarray:
        """[..., 2] original pixel coords → coords in the S×S output."""
        out = self.resized_kpts(kpts)
        out[..., 0] -= self.x0
        out[..., 1] -= self.y0
        return out


def plan_resize(width: int, height: int, size: int, mode: str = "squash",
                rng: np.random.Generator | None = None) -> Plan:
    """The plan of `mode` for a width×height frame; `rng` draws the crop offset (crop mode only)."""
    if mode == "squash":
        return Plan(width, height, size, size, 0, 0, size)
    if mode == "letterbox":
        scale = size / max(width, height)
        new_w, new_h = max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))
        return Plan(width, height, new_w, new_h, -((size - new_w) // 2), -((size - new_h) // 2), size)
    assert mode == "crop", f"unknown resize mode {mode!r} (one of {RESIZE_MODES})"
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if rng is None:
        x0, y0 = (new_w - size) // 2, (new_h - size) // 2
    else:
        x0, y0 = int(rng.integers(0, new_w - size + 1)), int(rng.integers(0, new_h - size + 1))
    return Plan(width, height, new_w, new_h, x0, y0, size)


def apply_plan(img: Image.Image, plan: Plan, resample: int, fill=0) -> Image.Image:
    """PIL image at (width, height) → S×S per `plan`; `fill` is the padding colour."""
    img = img.resize((plan.new_width, plan.new_height), resample=resample)
    s = plan.size
    if plan.x0 >= 0 and plan.y0 >= 0 and plan.x0 + s <= plan.new_width and plan.y0 + s <= plan.new_height:
        return img.crop((plan.x0, plan.y0, plan.x0 + s, plan.y0 + s))
    canvas = Image.new(img.mode, (s, s), fill)
    canvas.paste(img, (-plan.x0, -plan.y0))
    return canvas


def window(frame: torch.Tensor, x0: int, y0: int, size: int) -> torch.Tensor:
    """[H', W'] → the [size, size] window with top-left (x0, y0); outside the frame is 0."""
    h, w = frame.shape
    if x0 >= 0 and y0 >= 0 and x0 + size <= w and y0 + size <= h:
        return frame[y0:y0 + size, x0:x0 + size].contiguous()
    out = frame.new_zeros(size, size)
    xs, ys = max(0, x0), max(0, y0)                    # overlap in frame coordinates
    xe, ye = min(w, x0 + size), min(h, y0 + size)
    if xe > xs and ye > ys:
        out[ys - y0:ye - y0, xs - x0:xe - x0] = frame[ys:ye, xs:xe]
    return out


def mean_fill(mean) -> tuple[int, int, int]:
    """The RGB colour that normalises to 0: letterbox padding carries no signal."""
    return tuple(int(round(255 * m)) for m in mean)


def to_pixels(img: Image.Image, mean, std) -> torch.Tensor:
    """RGB PIL (S×S) → normalised FloatTensor [3, S, S]."""
    return array_to_pixels(np.asarray(img.convert("RGB")), mean, std)


def array_to_pixels(rgb: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 [S, S, 3] → normalised FloatTensor [3, S, S], (v / 255 − mean) / std per channel: the one
    pixel formula of the decoding and the prepared paths. One strided copy into float32, then three
    in-place passes (the same IEEE operations as the out-of-place formula, so the same bits)."""
    out = np.empty((3, *rgb.shape[:2]), np.float32)
    np.copyto(out.transpose(1, 2, 0), rgb, casting="unsafe")          # HWC uint8 → CHW float32
    x = torch.from_numpy(out)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return x.div_(255.0).sub_(m).div_(s)


def image_to_pixels(image: Image.Image, plan: Plan, mean, std) -> torch.Tensor:
    """RGB PIL at the plan's (width, height) → [3, S, S]: bicubic resize, window, normalise."""
    return to_pixels(apply_plan(image.convert("RGB"), plan, Image.BICUBIC, mean_fill(mean)), mean, std)


def pil_to_pixels(image: Image.Image, size: int, mean, std, resize: str = "squash") -> torch.Tensor:
    """Eval transform (the validation transform of training): `resize` mode, no randomness → [3, S, S]."""
    return image_to_pixels(image, plan_resize(image.width, image.height, size, resize), mean, std)


def heatmap_png_to_tensor(png: Image.Image, plan: Plan) -> torch.Tensor:
    """8-bit heatmap PNG at the image's size → [S, S] in [0, 1], transformed like the image."""
    return torch.from_numpy(np.asarray(apply_plan(_heatmap_on_image(png, plan), plan, Image.BILINEAR, 0),
                                       dtype=np.float32) / 255.0)


def _heatmap_on_image(png: Image.Image, plan: Plan) -> Image.Image:
    hm = png.convert("L")
    if hm.size != (plan.width, plan.height):
        # a PNG at another size than the image: stretch it onto the image first
        hm = hm.resize((plan.width, plan.height), resample=Image.BILINEAR)
    return hm


# ------------------------------------------------------------------ what a prepared set stores


def pads(plan: Plan) -> bool:
    """Whether the plan's window reaches outside the resized frame (letterbox)."""
    return plan.x0 < 0 or plan.y0 < 0 or plan.x0 + plan.size > plan.new_width or plan.y0 + plan.size > plan.new_height


def stored_image(image: Image.Image, plan: Plan, fill) -> Image.Image:
    """What the prepared set keeps of an RGB image: the resized frame (squash: S×S; crop: the shorter
    side S, its window drawn per sample), or the padded S×S canvas where the plan pads (letterbox).
    The same PIL calls as `image_to_pixels`, so a window of it is the decoding path's image, bit for bit."""
    image = image.convert("RGB")
    if pads(plan):
        return apply_plan(image, plan, Image.BICUBIC, fill)
    return image.resize((plan.new_width, plan.new_height), resample=Image.BICUBIC)


def stored_heatmap_png(png: Image.Image, plan: Plan) -> Image.Image:
    """The heatmap PNG's twin of `stored_image` (bilinear, padding 0), as `heatmap_png_to_tensor`."""
    hm = _heatmap_on_image(png, plan)
    if pads(plan):
        return apply_plan(hm, plan, Image.BILINEAR, 0)
    return hm.resize((plan.new_width, plan.new_height), resample=Image.BILINEAR)
