"""The image geometry (`data.resize`) on the five real MPII frames (16:9 and 854×480): with `squash`,
the reference's, every labelled joint lands inside the training image and the heatmap's mass moves
with the image (rendered from keypoints or read from the PNG `focus-data heatmaps` writes); `crop`
loses joints of these frames, which is why it is no longer the default; train and eval preprocessing
agree for every mode, the checkpoint telling evaluation which one it was trained with."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.data.heatmaps import people_arrays, render_heatmaps, to_uint8
from focusclip.training.config import DataConfig
from focusclip.training.data import FocusDataset, SampleSpec
from focusclip.training.sources import Item
from focusclip.training.transforms import RESIZE_MODES, plan_resize

S = 224
MEAN = STD = (0.5, 0.5, 0.5)


def _items(folder) -> list[tuple[Item, tuple[int, int]]]:
    """[(Item, (width, height))] for the real samples, keypoints 0-based (the JSON is 1-based)."""
    people: dict[str, list] = {}
    for row in json.loads((folder / "test_mpii.json").read_text()):
        people.setdefault(row["image"], []).append(
            {"kpts": [[x - 1.0, y - 1.0] for x, y in row["joints"]], "kpts_vis": [int(v) for v in row["joints_vis"]]})
    out = []
    for name, ps in sorted(people.items()):
        kpts, vis = people_arrays(ps)
        out.append((Item(name, "val", kpts, vis, ["a person"]), Image.open(folder / name).size))
    return out


def _sample(folder, item, mode, heatmaps="render"):
    cfg = DataConfig(dataset=str(folder), images=str(folder), heatmaps=heatmaps, resize=mode)
    ds = FocusDataset([item], cfg, SampleSpec(S, MEAN, STD, with_heatmaps=True, train=False, seed=0))
    return ds[(0, 0)]


def _centroid(hm: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:hm.shape[0], 0:hm.shape[1]]
    return np.array([(hm * xs).sum(), (hm * ys).sum()]) / hm.sum()


def test_squash_keeps_every_labelled_joint_and_crop_does_not(mpii_samples):
    lost_by_crop = 0
    for item, (w, h) in _items(mpii_samples):
        labelled = item.kpts_vis > 0                                         # [P, 16]
        inside = [(item.kpts[labelled] >= 0).all() and (item.kpts[labelled][:, 0] < w).all()
                  and (item.kpts[labelled][:, 1] < h).all()]
        assert all(inside), item.image                                       # the labels are in the frame
        for mode in ("squash", "letterbox"):
            xy = plan_resize(w, h, S, mode).kpts(item.kpts)[labelled]        # [J, 2] in the S×S image
            assert (xy >= -0.5).all() and (xy < S - 0.5).all(), (item.image, mode)
        xy = plan_resize(w, h, S, "crop").kpts(item.kpts)[labelled]
        lost_by_crop += int(((xy < -0.5) | (xy >= S - 0.5)).any(axis=1).sum())
    assert lost_by_crop > 0      # the centre crop of 16:9 frames cuts labelled joints off


def test_heatmap_mass_moves_with_the_image(mpii_samples, tmp_path):
    """The training heatmap keeps the full-resolution heatmap's centroid, mapped through the same
    squash, and all of its mass: exactly when read from the PNG `focus-data heatmaps` writes (resized
    like the image), within a few pixels when rendered at training resolution from the squashed
    keypoints (the definition truncates each box's corners and centre to whole pixels there, and the
    1-pixel sigma floor widens small parts). At each labelled joint the PNG-path heatmap is lit. A
    centre crop of the same frames loses part of the mass."""
    png_dir = tmp_path / "heatmaps"
    png_dir.mkdir()
    cropped_mass = []
    for item, (w, h) in _items(mpii_samples):
        full = render_heatmaps((item.kpts, item.kpts_vis), (h, w))           # [H, W], the stage's definition
        Image.fromarray(to_uint8(full).numpy(), mode="L").save(png_dir / (item.image[:-4] + ".png"))
        want = _centroid(full.numpy()) * [S / w, S / h] + [S / w / 2 - 0.5, S / h / 2 - 0.5]
        mass = float(full.sum()) * S * S / (w * h)
        for source, px, rel in ((str(png_dir), 0.1, 0.01), ("render", 3.0, 0.05)):
            hm = _sample(mpii_samples, item, "squash", source)["heatmap"].numpy()   # [S, S]
            assert hm.shape == (S, S)
            np.testing.assert_allclose(_centroid(hm), want, atol=px, err_msg=f"{item.image} {source}")
            assert hm.sum() == pytest.approx(mass, rel=rel), (item.image, source)
            if source != "render":
                xy = plan_resize(w, h, S, "squash").kpts(item.kpts)[item.kpts_vis > 0]
                lit = hm[np.round(xy[:, 1]).astype(int).clip(0, S - 1), np.round(xy[:, 0]).astype(int).clip(0, S - 1)]
                assert (lit > 0.05).all(), (item.image, lit.min())
        crop = plan_resize(w, h, S, "crop")
        hm = _sample(mpii_samples, item, "crop", str(png_dir))["heatmap"].numpy()
        cropped_mass.append(hm.sum() / (float(full.sum()) * crop.new_width * crop.new_height / (w * h)))
    assert min(cropped_mass) < 0.9, cropped_mass


def test_image_and_heatmap_share_the_geometry_in_every_mode(mpii_samples):
    """Letterbox pads with the mean (0 after normalising, to 8 bits) where the heatmap is 0; crop drops the
    same columns from both; all three put the image where the keypoints say."""
    item, (w, h) = _items(mpii_samples)[0]
    for mode in RESIZE_MODES:
        s = _sample(mpii_samples, item, mode)
        plan = plan_resize(w, h, S, mode)
        assert s["pixels"].shape == (3, S, S) and s["heatmap"].shape == (S, S)
        if mode == "letterbox":
            pad = -plan.y0                                                   # rows above the frame
            assert pad > 0 and s["pixels"][:, :pad].abs().max() <= 1.01 / 255 and s["heatmap"][:pad].max() == 0
            assert s["pixels"][:, pad + 2:S - pad - 2].abs().amax(dim=(0, 2)).min() > 0
        # the pixels are the frame resized by the plan: compare with an independent PIL resize
        ref = Image.open(mpii_samples / item.image).convert("RGB").resize((plan.new_width, plan.new_height),
                                                                          Image.BICUBIC)
        arr = np.asarray(ref, np.float32) / 255 * 2 - 1                      # [H', W', 3] normalised
        y0, x0 = max(plan.y0, 0), max(plan.x0, 0)
        got = s["pixels"].permute(1, 2, 0).numpy()[y0 - plan.y0:y0 - plan.y0 + 10, x0 - plan.x0:x0 - plan.x0 + 10]
        np.testing.assert_allclose(got, arr[y0:y0 + 10, x0:x0 + 10], atol=1e-6)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_eval_preprocesses_like_training_from_the_checkpoint_config(mpii_samples, tmp_path, mode):
    from focusclip.training import load_checkpoint
    from tests.eval.tiny_models import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "run", train_config=f"data: {{resize: {mode}}}\n")
    m = load_checkpoint(ckpt)
    assert m.resize == mode
    item, _ = _items(mpii_samples)[1]
    cfg = DataConfig(dataset=".", images=str(mpii_samples), resize=mode)
    ds = FocusDataset([item], cfg, SampleSpec(m.image_size, m.image_mean, m.image_std, False, train=False, seed=0))
    torch.testing.assert_close(m.preprocess(Image.open(mpii_samples / item.image)), ds[(0, 0)]["pixels"],
                               rtol=0, atol=0)


def test_checkpoints_from_before_data_resize_evaluate_centre_cropped(tmp_path):
    from focusclip.training import load_checkpoint
    from tests.eval.tiny_models import save_tiny_checkpoint

    assert load_checkpoint(save_tiny_checkpoint(tmp_path / "old", train_config="model: {name: x}\n")).resize == "crop"
