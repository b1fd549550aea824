"""Train/val assignment of MPII images (docs/design.md §3.1).

`img_train == 0` images are `test` and stay so. Among the others, `val` comes from HRNet/mmpose split
files when the user has them; otherwise from a deterministic hash of the image name:
`sha1("focusclip-val-v1:" + image)`, first 8 bytes as a big-endian integer, divided by 2**64, is below
0.15. The hash depends on nothing but the name (not on order, Python's hash seed or the machine),
so every run and every machine puts the same images in `val`, and adding images never moves others.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

VAL_FRACTION = 0.15
VAL_SALT = "focusclip-val-v1"


def hash_fraction(image: str, salt: str = VAL_SALT) -> float:
    """A uniform number in [0, 1) fixed by the image name."""
    digest = hashlib.sha1(f"{salt}:{image}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(image: str, fraction: float = VAL_FRACTION) -> str:
    """`val` for about `fraction` of image names, `train` for the rest, always the same for a name."""
    return "val" if hash_fraction(image) < fraction else "train"


def assign_val(records: Iterable, val_images: set[str] | None = None,
               fraction: float = VAL_FRACTION) -> dict[str, int]:
    """Set `split` of every non-test record (objects with `.image`/`.split`) to `val` or `train`.

    With `val_images` (names from split files) membership decides; without it, `hash_split`.
    Returns how many test images the split files listed as val (they stay `test`)."""
    conflicts = 0
    for rec in records:
        if rec.split == "test":
            conflicts += bool(val_images and rec.image in val_images)
            continue
        if val_images is None:
            rec.split = hash_split(rec.image, fraction)
        else:
            rec.split = "val" if rec.image in val_images else "train"
    return {"val_images_marked_test_in_source": conflicts}
