"""Images as they are displayed: every command that decodes a photo for a model (focus-train's loader
and its prepared frames, focus-eval's readers) applies its EXIF orientation the way viewers do
(`ImageOps.exif_transpose`), so a phone photo stored sideways with an Orientation tag is seen upright,
the same way in training and in evaluation. Boxes and sizes then refer to the displayed image.
"""
from __future__ import annotations

from PIL import Image, ImageOps

ORIENTATION = 0x0112            # the EXIF Orientation tag
QUARTER_TURNS = {5, 6, 7, 8}    # orientations whose display swaps width and height


def upright(image: Image.Image) -> Image.Image:
    """The image as displayed, in RGB: its EXIF orientation applied (and the tag dropped), then converted."""
    return ImageOps.exif_transpose(image).convert("RGB")


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as displayed, from its header alone (nothing decoded)."""
    width, height = image.size
    return (height, width) if image.getexif().get(ORIENTATION) in QUARTER_TURNS else (width, height)
