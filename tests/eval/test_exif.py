"""EXIF orientation: a photo stored sideways with an Orientation tag is seen upright, the same way by
focus-eval's readers and focus-train's loader (focusclip.core.images), so it embeds as the upright photo."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.core.images import ORIENTATION, displayed_size
from focusclip.eval.readers import ImageRef, Sample, load_image
from focusclip.eval.zeroshot import embed_samples

# Orientation 6: the stored pixels are the picture turned a quarter counter-clockwise; a viewer turns
# them a quarter clockwise (ImageOps.exif_transpose uses ROTATE_270 for it).
STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def picture() -> Image.Image:
    """48×32, no symmetry: a red top-left block, a blue bottom band, a gradient elsewhere."""
    yy, xx = np.mgrid[0:32, 0:48]
    arr = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=-1).astype(np.uint8)
    arr[:12, :16] = (230, 20, 20)
    arr[26:, :] = (20, 20, 230)
    return Image.fromarray(arr)


def save(path, image: Image.Image, orientation: int | None = None) -> None:
    """A JPEG at quality 100 without chroma subsampling, so turning it costs almost nothing."""
    exif = Image.Exif()
    if orientation:
        exif[ORIENTATION] = orientation
    image.save(path, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())


@pytest.fixture
def photos(tmp_path):
    save(tmp_path / "upright.jpg", picture())
    for o, turn in STORED.items():
        save(tmp_path / f"o{o}.jpg", picture().transpose(turn), orientation=o)
    return tmp_path


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_an_exif_rotated_jpeg_is_read_upright(photos, orientation):
    path = photos / f"o{orientation}.jpg"
    with Image.open(path) as raw:
        assert raw.size == ((32, 48) if orientation in (6, 8) else (48, 32))      # stored sideways
        assert displayed_size(raw) == (48, 32)                                   # shown upright
    got = np.asarray(load_image(ImageRef(path=str(path))), np.int16)
    want = np.asarray(load_image(ImageRef(path=str(photos / "upright.jpg"))), np.int16)
    assert got.shape == want.shape == (32, 48, 3)
    assert np.abs(got - want).max() <= 8 and np.abs(got - want).mean() < 1.5     # JPEG, turned
    assert got[:12, :16].mean(axis=(0, 1)).round().tolist() == pytest.approx([230, 20, 20], abs=4)
    # a box is in the displayed picture: the red block
    crop = np.asarray(load_image(ImageRef(path=str(path), box=(0, 0, 16, 12))), float)
    assert crop.shape == (12, 16, 3) and crop[..., 0].mean() > 200


def test_training_and_evaluation_read_the_same_upright_pixels(photos):
    from focusclip.training.config import DataConfig
    from focusclip.training.data import read_image
    from focusclip.training.sources import Item

    item = Item("o6.jpg", "train", np.zeros((0, 16, 2), np.float32), np.zeros((0, 16), np.int64))
    trained = np.asarray(read_image(item, DataConfig(images=str(photos))))
    evaluated = np.asarray(load_image(ImageRef(path=str(photos / "o6.jpg"))))
    assert np.array_equal(trained, evaluated)


def test_the_rotated_photo_embeds_as_the_upright_one(photos, tmp_path):
    from focusclip.training.checkpoint import load_checkpoint
    from tests.eval.tiny_models import save_tiny_checkpoint

    model = load_checkpoint(save_tiny_checkpoint(tmp_path / "run"), device="cpu")
    names = ["upright.jpg", "o6.jpg", "o8.jpg", "o3.jpg"]
    samples = [Sample(ImageRef(path=str(photos / n)), ("x",), n) for n in names]
    feats, why = embed_samples(model, samples, batch_size=4, workers=0, device=torch.device("cpu"))
    assert why == [""] * 4
    for i in range(1, 4):
        assert float(feats[0] @ feats[i]) > 0.999, names[i]
    # what reading the stored pixels as they are would give: another picture, another embedding
    sideways = model.encode_images(model.preprocess(Image.open(photos / "o6.jpg").convert("RGB"))[None])
    assert float(feats[0] @ sideways[0].numpy()) < 0.999
