"""What every evaluation-dataset reader returns, and the one image loader they all share.

A reader turns a dataset in its official on-disk layout into a `DatasetSplit`: samples (how to load
the image, and its label names in the dataset's own spelling), the dataset's class list in the
dataset's own order, and the rows it skipped, counted by reason. Readers never touch the model or
the task's label order; `eval.tasks` maps label names onto task indices.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from focusclip.core.images import upright

FER_SIDE = 48  # FER2013 pixels: 48×48 grayscale, row-major (docs/formats.md §3)


class MissingData(Exception):
    """The dataset is not under --data-root. `expected` names the path a user should provide.
    Not a user error: the task is reported as missing and the other tasks still run."""

    def __init__(self, expected: str | Path, detail: str = ""):
        super().__init__(f"{expected}{': ' + detail if detail else ''}")
        self.expected = str(expected)


@dataclass(frozen=True)
class ImageRef:
    """How to load one image; plain data, so DataLoader workers can receive it.

    Exactly one source: `path` (an image file), `pixels` (raw 48×48 grayscale bytes from a FER CSV)
    or `video` (decode the clip's middle frame). `box` (x0, y0, x1, y1) crops after loading and is
    clamped to the image there, since readers do not open images to learn their size."""
    path: str | None = None
    pixels: bytes | None = None
    video: str | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Sample:
    image: ImageRef
    labels: tuple[str, ...]  # class names as the dataset spells them; several for multi-label tasks
    key: str                 # identifies the sample in messages (file name, CSV row)


@dataclass
class DatasetSplit:
    dataset: str
    split: str
    classes: list[str]       # the dataset's class list, in the dataset's own order
    samples: list[Sample]
    skipped: Counter = field(default_factory=Counter)  # reason → rows skipped
    source: str = ""         # the file or folder the labels came from

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n


class BadImage(Exception):
    """An image that cannot be used (unreadable file, crop outside the image); counted, not fatal."""


def load_image(ref: ImageRef, min_crop: int = 2) -> Image.Image:
    """ImageRef → RGB PIL image as displayed (EXIF orientation applied, focusclip.core.images), cropped
    to the clamped box. Raises BadImage with a reason."""
    if ref.pixels is not None:
        arr = np.frombuffer(ref.pixels, dtype=np.uint8).reshape(FER_SIDE, FER_SIDE)
        img = Image.fromarray(arr)  # 2-D uint8 → mode "L"
    elif ref.video is not None:
        img = _video_frame(ref.video)
    else:
        try:
            with Image.open(ref.path) as f:
                img = upright(f)          # as displayed: EXIF orientation applied, as in training
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise BadImage(f"unreadable image ({type(e).__name__})") from None
    if ref.box is not None:
        box = clamp_box(ref.box, img.width, img.height)
        if box is None or box[2] - box[0] < min_crop or box[3] - box[1] < min_crop:
            raise BadImage("box outside the image or smaller than 2 px")
        img = img.crop(box)
    return img if img.mode == "RGB" else img.convert("RGB")


def _video_frame(video: str) -> Image.Image:
    from focusclip.data.kinetics import middle_frame

    frame = middle_frame(video)
    if frame is None:
        raise BadImage("undecodable video")
    return Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1]))  # BGR → RGB


def clamp_box(box, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) in pixels → integer box inside [0, W]×[0, H]; None when nothing is left.
    EMOTIC and LAGENDA boxes can fall outside the image (docs/formats.md §2, §7)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    x1, y1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def norm_name(name: str) -> str:
    """Compare class names loosely: case, `_` vs space and repeated blanks do not matter
    (`watching_TV` ≡ `watching tv`, `East Asian` ≡ `east_asian`)."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().casefold()


def find_dir(root: Path, *names: str) -> Path | None:
    """The first of `root/name` that exists (datasets ship with varying capitalisation)."""
    for name in names:
        if (root / name).exists():
            return root / name
    return None

