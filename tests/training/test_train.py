"""A tiny FocusCLIP run on a generated world: the loss falls, a killed run resumes exactly (text
dropout on: each step's dropout comes from (seed, rank, step)), alpha learns, the checkpoint loads for
evaluation, NaN stops cleanly, unreadable images are skipped."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.core.errors import FocusError
from tests.training.fixtures import make_world, tiny_overrides
from focusclip.training import load_checkpoint
from focusclip.training.config import load_config
from focusclip.training.trainer import run_train

CONFIG = "configs/tiny-focusclip.yaml"
N_TRAIN, BATCH, EPOCHS = 64, 16, 6          # 4 steps per epoch, 24 steps
RUN = {"train.batch_size": BATCH, "train.epochs": EPOCHS, "train.checkpoint_every": 5, "model.text.dropout": 0.1}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    return make_world(tmp_path_factory.mktemp("world"), n_train=N_TRAIN, n_val=16)


@pytest.fixture(scope="module")
def run_a(world, tmp_path_factory):
    """The uninterrupted reference run."""
    out = tmp_path_factory.mktemp("runs") / "a"
    report = run_train(load_config(CONFIG, tiny_overrides(world, out, **RUN)))
    return out, report


def test_tiny_focusclip_loss_falls_and_run_dir_is_complete(run_a):
    out, report = run_a
    rows = _rows(out)
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in train] == list(range(1, 25))
    assert [r["epoch"] for r in val] == list(range(1, EPOCHS + 1))
    first, last = np.mean([r["loss"] for r in train[:4]]), np.mean([r["loss"] for r in train[-4:]])
    assert last < first - 1.0
    # below chance: a random model scores ln(2N - 1) per pair on a batch of N = 16
    chance = math.log(2 * 16 - 1)
    best_pair = min(v for k, v in val[-1].items() if k.startswith("val_loss_"))
    assert best_pair < chance - 0.2, val[-1]
    for key in ("loss_image_text", "loss_masked_image", "loss_masked_text", "lr", "alpha", "epoch"):
        assert key in train[0]
    assert train[0]["loss"] == pytest.approx(sum(train[0][f"loss_{k}"] for k in
                                                 ("image_text", "masked_image", "masked_text")), rel=1e-5)
    for png in ("loss.png", "similarity.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = out / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["20", "24", "last"]      # keep_checkpoints: 2
    for name in ("model.safetensors", "config.json", "tokenizer.json", "train_config.yaml", "README.md",
                 "training_state/state.pt", "training_state/progress.json"):
        assert (ck / "last" / name).exists(), name
    resolved = load_config(out / "config.yaml")       # the resolved config, overrides applied
    assert resolved.train.epochs == EPOCHS and resolved.output_dir == str(out)
    saved = json.loads((out / "report.json").read_text())
    assert saved["counts"]["steps"] == 24 and saved["counts"]["train_images"] == N_TRAIN


def test_val_every_adds_validation_rows_without_changing_training(run_a, world, tmp_path):
    """train.val_every: 3 validates at steps 3, 6, … as well as at each epoch's end (4 steps); the
    training rows and the epoch-end validation losses are those of the run without it."""
    out = tmp_path / "v"
    run_train(load_config(CONFIG, tiny_overrides(world, out, **RUN, **{"train.val_every": 3})))
    rows, ref = _rows(out), _rows(run_a[0])
    val = {r["step"]: r for r in rows if "val_loss" in r}
    assert sorted(val) == sorted(set(range(3, 25, 3)) | set(range(4, 25, 4)))
    for r in (r for r in ref if "val_loss" in r):
        assert val[r["step"]]["val_loss"] == pytest.approx(r["val_loss"], rel=1e-6, abs=1e-7)
    assert [r["loss"] for r in rows if "loss" in r] == pytest.approx([r["loss"] for r in ref if "loss" in r],
                                                                      rel=1e-6, abs=1e-7)


def test_alpha_learns_and_stays_in_unit_interval(run_a):
    alphas = [r["alpha"] for r in _rows(run_a[0]) if "alpha" in r]
    assert all(0.0 < a < 1.0 for a in alphas)
    assert abs(alphas[-1] - 0.5) > 1e-4            # it moved from alpha_init, so it got gradients


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(world, run_a, tmp_path):
    out = tmp_path / "b"
    cfg = load_config(CONFIG, tiny_overrides(world, out, **RUN))

    def kill(step, row):
        if step == 13:                   # after checkpoint 10; steps 11–13 are lost with the process
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, on_step=kill)
    assert json.loads((out / "checkpoints/last/training_state/progress.json").read_text())["step"] == 10
    with pytest.raises(FocusError, match="--resume latest"):
        run_train(cfg)                   # a second plain start refuses to clobber the run
    run_train(cfg, resume="latest")
    a, b = _rows(run_a[0]), _rows(out)
    assert [r["step"] for r in b] == [r["step"] for r in a]      # rows 11–13 of the kill were dropped
    for ra, rb in zip(a, b):
        assert rb == pytest.approx(ra, rel=0, abs=0), ra["step"]   # bit-identical on the CPU


def test_checkpoint_loads_for_evaluation(run_a, world):
    out = run_a[0]
    m = load_checkpoint(out)
    assert m.name == "tiny-focusclip@24" and m.image_size == 64 and not m.model.training
    img = Image.open(world["images"] / "000000070.jpg")
    x = m.preprocess(img)
    assert x.shape == (3, 64, 64)
    # the eval transform is the training/validation transform: compare with the dataset's sample
    from focusclip.training.data import FocusDataset, SampleSpec
    from focusclip.training.sources import Item

    spec = SampleSpec(64, (0.5,) * 3, (0.5,) * 3, with_heatmaps=False, train=False, seed=0)
    item = Item("000000070.jpg", "val", np.zeros((0, 16, 2), np.float32), np.zeros((0, 16), np.int64), ["t"])
    ds = FocusDataset([item], load_config(out / "config.yaml").data, spec)
    torch.testing.assert_close(ds[(0, 0)]["pixels"], x, rtol=0, atol=0)
    emb = m.encode_images(torch.stack([x, x.flip(-1)]))
    assert emb.shape == (2, 64)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    texts = ["A red figure stands upright at the left of the picture.", "one person"]
    both, alone = m.encode_texts(texts), m.encode_texts(texts[1:])
    torch.testing.assert_close(both.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(both[1], alone[0], rtol=0, atol=2e-6)   # padding does not leak in
    assert m.encode_texts([]).shape == (0, 64)
    # a numbered checkpoint dir works too, and gives that step's (different) weights
    m20 = load_checkpoint(out / "checkpoints" / "20")
    assert m20.name == "tiny-focusclip@20"
    assert not torch.allclose(m20.encode_images(x[None]), emb[:1])


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(world, tmp_path):
    out = tmp_path / "nan"
    cfg = load_config(CONFIG, tiny_overrides(world, out, **{
        "optim.name": "sgd", "optim.lr": "1e30", "optim.grad_clip": 0.0, "optim.warmup_steps": 0,
        "train.checkpoint_every": 1, "train.max_steps": 4}))
    with pytest.raises(FocusError, match=r"non-finite training loss at step \d.*last good checkpoint") as e:
        run_train(cfg)
    step = int(str(e.value).split("(step ")[1].split(")")[0])
    assert json.loads((out / "checkpoints/last/training_state/progress.json").read_text())["step"] == step
    assert load_checkpoint(out).name.endswith(f"@{step}")


def test_unreadable_images_are_skipped_and_counted(world, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(world["images"], images)
    (images / "000000003.jpg").write_bytes(b"not a jpeg")
    (images / "000000005.jpg").unlink()
    cfg = load_config(CONFIG, tiny_overrides({**world, "images": images}, tmp_path / "run", **{
        "train.epochs": 1, "train.batch_size": 16, "train.checkpoint_every": 0}))
    report = run_train(cfg, resume="latest").to_dict()    # nothing to resume yet: a fresh start
    assert report["counts"]["steps"] == 3
    assert report["skipped"]["image file missing"] == 1
    assert report["skipped"]["unreadable image (replaced by the next one)"] == 1
    assert "000000003.jpg" in report["skipped_examples"]["unreadable image (replaced by the next one)"][0]
    assert report["counts"]["samples"] == 48          # 3 full batches of 16 from 63 images
