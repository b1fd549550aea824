"""The picture an image-grounded prompt (`pose-vlm-v1`) sends: the photo resized so its long side is at
most `max_side`, with the annotated people marked on the copy (never on the dataset's file), as a JPEG
`data:` URL or, for a server allowed to read local media, a `file://` URL of the marked copy.

Marks (`--mark`): `box`, each annotated person's keypoint box (padded) with their number at its top left;
`number`, the number alone in a disc at the person's head; `skeleton`, the limbs and the number; `none`.
Person K is the K-th person of the record (1-based), as the prompt's lines name them.
"""
from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from focusclip.core.errors import fail
from focusclip.data.records import Annotation
from focusclip.data.skeleton import JOINT_ID, LIMBS

MARKS = ("none", "box", "number", "skeleton")
# A numbered box: it says which person is meant and how far they reach, and it covers none of their limbs
# (a skeleton hides the joints the model is asked to judge, and a number alone is ambiguous in a crowd).
DEFAULT_MARK = "box"
# Current VLMs spend a token per 28×28 patch (Qwen2.5-VL; 14×14 merged 2×2): a 768-px long side is ≤ 756
# tokens for a 4:3 photo, within the default budgets of Qwen2.5-VL, Gemma 3 (896² tiles) and gpt-4o's
# 768-px short-side rescale, and the people of an MPII photo stay tens of pixels tall.
DEFAULT_MAX_SIDE = 768
URL_KINDS = ("data", "file")
JPEG_QUALITY = 90
BOX_PAD = 0.1        # of the keypoint box's larger side, on each side
COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (255, 225, 25))   # Sasha Trubetskoy's distinct colours, person K takes K mod 8


@dataclass(frozen=True)
class PictureSpec:
    """How a run's pictures are made: where the photos are, the long-side cap, the marks, the URL kind
    (`file`: the marked copies are written under `copies_dir`)."""
    images_dir: Path
    max_side: int = DEFAULT_MAX_SIDE
    mark: str = DEFAULT_MARK
    url: str = "data"
    copies_dir: Path | None = None

    def __post_init__(self):
        if self.mark not in MARKS:
            raise fail(f"unknown mark '{self.mark}'", "--mark", f"use one of: {', '.join(MARKS)}")
        if self.url not in URL_KINDS:
            raise fail(f"unknown image URL kind '{self.url}'", "--image-url", "use data or file")
        if self.max_side < 28:
            raise fail(f"--image-max-side {self.max_side} is below one 28-px patch", "--image-max-side",
                       f"e.g. --image-max-side {DEFAULT_MAX_SIDE}")

    @property
    def copies(self) -> Path:
        """Where `file` URLs' marked copies are written."""
        return Path(self.copies_dir or Path(self.images_dir) / ".focusclip-marked")

    def describe(self) -> str:
        """What the model is shown, in the prompt text that is hashed (so another cap or mark is another key)."""
        return f"[picture: long side at most {self.max_side} px, marks: {self.mark}]"


def person_marks(annotation: Annotation) -> list[tuple[list[tuple[float, float] | None], tuple[float, ...] | None]]:
    """Per person: the labelled keypoints (None where unlabelled) and the padded keypoint box
    (x1, y1, x2, y2) in source pixels, None when no joint is labelled."""
    out = []
    for p in annotation.people:
        pts = [(x, y) if v > 0 else None for (x, y), v in zip(p.kpts, p.kpts_vis)]
        xy = [q for q in pts if q is not None]
        box = None
        if xy:
            xs, ys = [q[0] for q in xy], [q[1] for q in xy]
            pad = BOX_PAD * max(max(xs) - min(xs), max(ys) - min(ys), 20.0)
            box = (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)
        out.append((pts, box))
    return out


@dataclass(frozen=True)
class Picture:
    """One image's picture, made when a request is built (25k data URLs are not kept in memory)."""
    annotation: Annotation
    spec: PictureSpec

    @property
    def path(self) -> Path:
        return Path(self.spec.images_dir) / self.annotation.image

    def render(self):
        """(the marked, resized RGB copy, the scale from source pixels to its pixels)."""
        from PIL import Image, ImageOps

        try:
            with Image.open(self.path) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError) as e:
            raise fail(f"cannot read the image ({e})", str(self.path),
                       "pass --images DIR holding every annotated image") from None
        scale = min(1.0, self.spec.max_side / max(im.size))
        if scale < 1.0:
            size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
            im = im.resize(size, Image.Resampling.LANCZOS)
        draw_marks(im, person_marks(self.annotation), scale, self.spec.mark)
        return im, scale

    def jpeg(self) -> bytes:
        im, _ = self.render()
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)   # 4:4:4: thin coloured marks keep their colour
        return buf.getvalue()

    def url(self) -> str:
        data = self.jpeg()
        if self.spec.url == "data":
            return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        folder = self.spec.copies
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / f"{hashlib.sha256(data).hexdigest()[:16]}-{Path(self.annotation.image).name}"
        if not copy.exists():
            copy.write_bytes(data)
        return copy.resolve().as_uri()

    def pil(self):
        return self.render()[0]


def draw_marks(im, people, scale: float, mark: str) -> None:
    """Draw each person's mark on `im` (already scaled by `scale`) in place; person K is labelled K+1."""
    if mark == "none":
        return
    from PIL import ImageDraw

    draw = ImageDraw.Draw(im)
    width = max(3, round(max(im.size) / 200))
    for k, (pts, box) in enumerate(people):
        if box is None:
            continue
        colour, label = COLOURS[k % len(COLOURS)], str(k + 1)
        x1, y1, x2, y2 = (max(0.0, c * scale) for c in box)
        x2, y2 = min(x2, im.width - 1), min(y2, im.height - 1)
        if mark == "box":
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
            _label(draw, (x1, y1), label, colour, width)
        elif mark == "skeleton":
            for a, b in LIMBS:
                if pts[a] is not None and pts[b] is not None:
                    draw.line([(pts[a][0] * scale, pts[a][1] * scale), (pts[b][0] * scale, pts[b][1] * scale)],
                              fill=colour, width=width)
            _label(draw, _head(pts, box, scale), label, colour, width)
        else:   # number
            _label(draw, _head(pts, box, scale), label, colour, width, disc=True)


def _head(pts, box, scale: float) -> tuple[float, float]:
    """Where a person's number goes: the head top, else the upper neck, else the box's top centre."""
    for name in ("head_top", "upper_neck"):
        q = pts[JOINT_ID[name]]
        if q is not None:
            return q[0] * scale, q[1] * scale
    return (box[0] + box[2]) / 2 * scale, box[1] * scale


def _label(draw, at: tuple[float, float], text: str, colour, width: int, disc: bool = False) -> None:
    """A number in white on a filled `colour` square (or disc) whose top left (disc: centre) is `at`."""
    side = 8 * width
    x, y = at
    if disc:
        x, y = x - side / 2, y - side / 2
    shape = draw.ellipse if disc else draw.rectangle
    shape((x, y, x + side, y + side), fill=colour)
    draw.text((x + side / 2, y + side / 2), text, fill=(255, 255, 255), anchor="mm", font_size=side * 0.8)
