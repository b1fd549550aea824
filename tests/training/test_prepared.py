"""The prepared training set (`data.prepared`): the same tensors as decoding the source files, on the
real MPII frames, in every geometry and with the random crop and flip on; keyed by what it depends on
(a changed size, resize mode, heatmap mode or source file builds another shard, and the new content is
what is read); a SIGKILLed `focus-train prepare` resumes; training from it gives the same losses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.data.heatmaps import people_arrays, render_heatmaps, to_uint8
from focusclip.core.report import Report
from focusclip.training.config import load_config
from focusclip.training.data import FocusDataset, SampleSpec
from focusclip.training.prepare import prepare_set
from focusclip.training.prepared import open_prepared
from focusclip.training.sources import Item
from tests.conftest import REPO, console_script
from tests.training.fixtures import make_world, tiny_overrides

CONFIG = REPO / "configs/tiny-focusclip.yaml"
MEAN = STD = (0.5, 0.5, 0.5)
RENDER_TOL = 0.5 / 255 + 1e-6      # a rendered heatmap is stored as round(255 · value)


def _mpii(folder: Path, out: Path) -> list[Item]:
    """The real samples as Items (HRNet JSON is 1-based), with full-size heatmap PNGs in `out` as
    `focus-data heatmaps` writes them (round(255 · value), 8-bit grayscale)."""
    people: dict[str, list] = {}
    for row in json.loads((folder / "test_mpii.json").read_text()):
        people.setdefault(row["image"], []).append(
            {"kpts": [[x - 1.0, y - 1.0] for x, y in row["joints"]], "kpts_vis": [int(v) for v in row["joints_vis"]]})
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for name, ps in sorted(people.items()):
        w, h = Image.open(folder / name).size
        Image.fromarray(to_uint8(render_heatmaps(ps, (h, w))).numpy(), mode="L").save(out / (name[:-4] + ".png"))
        items.append(Item(name, "train", *people_arrays(ps), ["The person raises the left arm.", "A person."]))
    return items


def _config(images, heatmaps, prepared, size=96, **data):
    sets = {"data.images": images, "data.heatmaps": heatmaps, "data.prepared": prepared, "train.image_size": size,
            "model.vision.patch_size": 8, "train.num_workers": 1, **{f"data.{k}": v for k, v in data.items()}}
    return load_config(CONFIG, [f"{k}={v}" for k, v in sets.items()])


def _pair(cfg, items, train=True):
    """(decoding dataset, prepared dataset) of the same items and config."""
    report = Report("t")
    plans = prepare_set(cfg, items, report, with_heatmaps=True)
    spec = SampleSpec(cfg.train.image_size, MEAN, STD, with_heatmaps=True, train=train, seed=5)
    frames = open_prepared(Path(cfg.data.prepared), plans, items)
    return FocusDataset(items, cfg.data, spec), FocusDataset(items, cfg.data, spec, frames), report


@pytest.mark.parametrize("resize", ["squash", "letterbox", "crop"])
def test_prepared_samples_equal_the_decoded_ones_on_the_real_frames(mpii_samples, tmp_path, resize):
    """Pixels bit for bit; heatmaps from the PNGs bit for bit; heatmaps drawn from the keypoints to
    the 8-bit rounding they are stored with — with flips and (crop) random windows drawn per sample."""
    items = _mpii(mpii_samples, tmp_path / "png")
    for heatmaps, tol in ((tmp_path / "png", 0.0), ("render", RENDER_TOL)):
        cfg = _config(mpii_samples, heatmaps, tmp_path / "prep", resize=resize, flip=True,
                      random_crop=resize == "crop")
        direct, prepared, _ = _pair(cfg, items)
        flips = set()
        for epoch in range(4):
            for i in range(len(items)):
                a, b = direct[(epoch, i)], prepared[(epoch, i)]
                assert a["text"] == b["text"] and a["image"] == b["image"]
                assert a["pixels"].shape == (3, 96, 96) and a["heatmap"].shape == (96, 96)
                torch.testing.assert_close(b["pixels"], a["pixels"], rtol=0, atol=0)
                torch.testing.assert_close(b["heatmap"], a["heatmap"], rtol=0, atol=tol)
                flips = flips | {a["text"].startswith("The person raises the right")}
        assert flips == {True, False}                                 # both sides were drawn
    if resize == "crop":                                              # the window moves between epochs
        windows = {tuple(prepared[(e, 0)]["pixels"][0, 0, :4].tolist()) for e in range(6)}
        assert len(windows) > 1


def test_prepared_set_is_keyed_by_size_mode_and_sources(mpii_samples, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(mpii_samples, images)
    items = _mpii(images, tmp_path / "png")
    prep = tmp_path / "prep"

    def shards(kind):
        return {p.name for p in (prep / kind).iterdir()}

    _, _, r = _pair(_config(images, "render", prep), items)
    assert r.extra["prepared"]["built"] == 2 and r.extra["prepared"]["reused"] == 0   # one shard per kind
    first = (shards("images"), shards("heatmaps"))
    _, _, r = _pair(_config(images, "render", prep), items)
    assert (r.extra["prepared"]["built"], r.extra["prepared"]["reused"]) == (0, 2)    # a rerun reads them
    for change in ({"size": 64}, {"resize": "letterbox"}):
        _, _, r = _pair(_config(images, "render", prep, **change), items)
        assert r.extra["prepared"]["built"] == 2, change
    assert len(shards("images")) == 3 and first[0] <= shards("images")               # old ones kept
    _, _, r = _pair(_config(images, "render", prep, heatmap_mode="person"), items)
    assert (r.extra["prepared"]["built"], r.extra["prepared"]["reused"]) == (1, 1)    # images reused
    # a changed source file: its shard is rebuilt and the new pixels are read
    victim = items[2].image
    Image.new("RGB", Image.open(images / victim).size, (250, 10, 10)).save(images / victim, quality=95)
    cfg = _config(images, "render", prep)
    direct, prepared, r = _pair(cfg, items, train=False)
    assert r.extra["prepared"]["built"] == 2
    red = prepared[(0, 2)]["pixels"]
    torch.testing.assert_close(red, direct[(0, 2)]["pixels"], rtol=0, atol=0)
    assert red[0].mean() > 0.9 and red[1].mean() < -0.8                               # (250, 10, 10) normalised
    # a changed heatmap PNG rebuilds its heatmap shard only
    cfg = _config(images, tmp_path / "png", prep)
    _pair(cfg, items)
    png = tmp_path / "png" / (victim[:-4] + ".png")
    Image.new("L", Image.open(png).size, 255).save(png)
    direct, prepared, r = _pair(cfg, items, train=False)
    assert (r.extra["prepared"]["built"], r.extra["prepared"]["reused"]) == (1, 1)
    assert prepared[(0, 2)]["heatmap"].min() == 1.0
    report = r.extra["prepared"]
    assert report["images"] == 5 and report["unused_shards"] >= 4 and report["bytes"] > 0
    # damaged shards (an index cut short, frames cut short) are built again, and say so
    shard = {kind: next(d for d in (prep / kind).iterdir() if d.name in {p.sha for p in _plans(cfg, items)})
             for kind in ("images", "heatmaps")}
    (shard["images"] / "index.json").write_text('{"rows": [')
    frames = shard["heatmaps"] / "frames.npy"
    frames.write_bytes(frames.read_bytes()[:200])
    direct, prepared, r = _pair(cfg, items, train=False)
    assert (r.extra["prepared"]["built"], r.extra["prepared"]["damaged_rebuilt"]) == (2, 2)
    for i in range(len(items)):
        torch.testing.assert_close(prepared[(0, i)]["pixels"], direct[(0, i)]["pixels"], rtol=0, atol=0)
        torch.testing.assert_close(prepared[(0, i)]["heatmap"], direct[(0, i)]["heatmap"], rtol=0, atol=0)


def _plans(cfg, items):
    from focusclip.training.prepare import geometry
    from focusclip.training.prepared import plan_shards

    return plan_shards(items, cfg.data, geometry(cfg), True, cfg.data.prepared_shard)


def test_unreadable_images_are_counted_like_the_decoding_path(tmp_path):
    world = make_world(tmp_path / "w", n_train=16, n_val=0)
    (world["images"] / "000000003.jpg").write_bytes(b"not a jpeg")
    reports = {}
    for name, extra in (("direct", {}), ("prepared", {"data.prepared": tmp_path / "prep"})):
        cfg = load_config(CONFIG, tiny_overrides(world, tmp_path / name, **{
            "train.epochs": 1, "train.batch_size": 8, "train.checkpoint_every": 0, **extra}))
        from focusclip.training.trainer import run_train

        reports[name] = run_train(cfg).to_dict()
    for key in ("skipped", "skipped_examples"):
        assert reports["prepared"][key] == reports["direct"][key]
    assert reports["direct"]["skipped"] == {"unreadable image (replaced by the next one)": 1}
    assert reports["prepared"]["prepared"]["shards"] == 2


def _big_world(root: Path, n: int) -> dict:
    """n 1280×720 JPEGs (slow enough to decode that a prepare can be killed half-way)."""
    world = make_world(root, n_train=n, n_val=0, size=(1280, 720))
    return world


def test_a_killed_prepare_resumes_with_the_shards_it_finished(tmp_path):
    world = _big_world(tmp_path / "w", 48)
    prep = tmp_path / "prep"
    args = [console_script("focus-train"), "prepare", str(CONFIG), "--set", f"data.prepared={prep}",
            "--set", "data.prepared_shard=4", "--set", "train.num_workers=1", "--set", "train.image_size=224",
            "--set", "model.vision.patch_size=16"] + \
        [x for s in tiny_overrides(world, tmp_path / "run") for x in ("--set", s)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = [d for d in (prep / "images").glob("*") if ".incomplete-" not in d.name] \
                if (prep / "images").is_dir() else []
            if len(done) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "prepare finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    kept = {d.name for d in (prep / "images").iterdir() if ".incomplete-" not in d.name}
    partial = [d for d in (prep / "images").iterdir() if ".incomplete-" in d.name]
    assert 2 <= len(kept) < 12                                         # 48 images / 4 per shard
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # 12 image and 12 heatmap shards, the image ones first: only the finished ones are reused
    assert f"in 24 shards ({24 - len(kept)} built, {len(kept)} reused)" in res.stdout, res.stdout
    assert kept <= {d.name for d in (prep / "images").iterdir()}
    assert not [d for d in (prep / "images").iterdir() if ".incomplete-" in d.name], partial
    report = json.loads((prep / "report.json").read_text())
    assert report["prepared"]["shards"] == 24 and report["prepared"]["images"] == 48
    per = report["prepared"]["bytes_per_1000_images"]
    assert per["images"] == pytest.approx(1000 * 224 * 224 * 3, rel=0.01)
    assert per["heatmaps"] == pytest.approx(1000 * 224 * 224, rel=0.02)


def test_training_from_the_prepared_set_gives_the_same_losses_and_weights(tmp_path):
    """Same seed, CPU: every logged loss and every final weight equal, with dropout, flips, random
    crops and two describers on, heatmaps from PNGs (stored exactly) and two persistent workers."""
    from safetensors.torch import load_file

    from focusclip.training.trainer import run_train

    torch.set_num_threads(1)
    world = make_world(tmp_path / "w", n_train=24, n_val=8)
    png = tmp_path / "png"
    png.mkdir()
    for a in map(json.loads, world["annotations"].read_text().splitlines()):
        hm = render_heatmaps(a["people"], (a["height"], a["width"]))
        Image.fromarray(to_uint8(hm).numpy(), mode="L").save(png / (Path(a["image"]).stem + ".png"))
    run = {"train.batch_size": 8, "train.epochs": 2, "train.checkpoint_every": 0, "train.num_workers": 2,
           "model.text.dropout": 0.1, "model.vision.dropout": 0.1, "data.flip": True, "data.resize": "crop",
           "data.random_crop": True, "data.heatmaps": png}
    outs = {}
    for name, extra in (("direct", {}), ("prepared", {"data.prepared": tmp_path / "prep"})):
        outs[name] = tmp_path / name
        run_train(load_config(CONFIG, tiny_overrides(world, outs[name], **run, **extra)))
    rows = {k: [json.loads(x) for x in (v / "metrics.jsonl").read_text().splitlines()] for k, v in outs.items()}
    assert len(rows["direct"]) == 6 + 2
    assert rows["prepared"] == rows["direct"]
    w = {k: load_file(str(v / "checkpoints/last/model.safetensors")) for k, v in outs.items()}
    assert w["prepared"].keys() == w["direct"].keys()
    for key in w["direct"]:
        assert torch.equal(w["prepared"][key], w["direct"][key]), key
    assert json.loads((outs["prepared"] / "report.json").read_text())["prepared"]["images"] == 32
