"""`focus-data heatmaps` through the real console script, plus the stage function for shards/modes."""
from __future__ import annotations

import json
import os
import subprocess

import cv2
import numpy as np
import pytest

from focusclip.core.errors import FocusError
from focusclip.pipeline.heatmaps.stage import png_size, render_overlay, run_heatmaps
from tests.conftest import console_script
from tests.data.test_heatmaps import literal_heatmap, person_with

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
NAN = float("nan")


def record(image, people, size=None):
    row = {"image": image, "split": "train", "people": [{"id": i, **p} for i, p in enumerate(people)]}
    if size:
        row["height"], row["width"] = size
    return row


@pytest.fixture
def dataset(tmp_path):
    """Images in real formats and an annotations.jsonl with every kind of trouble the stage handles."""
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "b.png"), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "c.jpg"), rng.integers(0, 255, (36, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "d.jpg"), rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (images / "empty.jpg").write_bytes(b"")
    body = {j: (8.0 + 3 * (j % 5), 6.0 + 2.5 * j) for j in range(16)}
    rows = [
        record("a.jpg", [person_with(body), person_with({12: (50.0, 10.0), 13: (60.0, 20.0)})], (48, 64)),
        record("b.png", [person_with({j: (x + 10, y) for j, (x, y) in body.items()})]),  # size from header
        record("c.jpg", [person_with({**body, 13: (NAN, 4.0), 14: (-2.0, 9.0)})], (36, 30)),
        record("d.jpg", [person_with({3: (5.0, 5.0)})], (20, 20)),                     # one joint
        record("missing.jpg", [person_with(body)], (48, 64)),
        record("broken.jpg", [person_with(body)]),
        record("empty.jpg", [person_with(body)], (10, 10)),
        record("a.jpg", [], (48, 64)),                                                  # duplicate
    ]
    ann = tmp_path / "annotations.jsonl"
    ann.write_text("".join(json.dumps(r) + "\n" for r in rows))  # NaN is written as JSON `NaN`
    return {"ann": ann, "images": images, "rows": {r["image"]: r for r in rows[:4]}, "tmp": tmp_path}


def cli(*args):
    return subprocess.run([console_script("focus-data"), "heatmaps", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=120)


def expected_png(row, height, width, mode="parts"):
    return np.round(255 * literal_heatmap(row["people"], height, width, mode)).astype(np.int16)


def check_png(path, row, size, mode="parts"):
    got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert got is not None and got.dtype == np.uint8 and got.shape == size
    diff = np.abs(got.astype(np.int16) - expected_png(row, *size, mode))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
    return got


def test_cli_renders_counts_resumes_and_forces(dataset):
    out = dataset["tmp"] / "heatmaps"
    args = (dataset["ann"], "--images", dataset["images"], "-o", out, "--device", "cpu", "--workers", "2")
    run = cli(*args, "--preview", "2")
    assert run.returncode == 0, run.stderr
    assert "4 rendered" in run.stdout and "1 missing" in run.stdout and "2 unreadable" in run.stdout
    sizes = {"a": (48, 64), "b": (40, 50), "c": (36, 30), "d": (20, 20)}
    names = {"a": "a.jpg", "b": "b.png", "c": "c.jpg", "d": "d.jpg"}
    for stem, size in sizes.items():
        png = check_png(out / f"{stem}.png", dataset["rows"][names[stem]], size)
        assert png.any() == (stem != "d")  # d has a single labelled joint: no part, all zero
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png", "d.png"]
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["rendered"] == 4 and report["counts"]["records"] == 8
    assert report["skipped"] == {"missing image": 1, "unreadable image": 2, "duplicate image": 1}
    assert report["counts"]["bad_coordinates"] == 2 and report["bad_coordinate_examples"] == ["c.jpg"]
    assert report["counts"]["people_under_two_joints"] == 1 and report["counts"]["people"] == 8
    previews = sorted(out.glob("preview/*.png"))
    assert [p.name for p in previews] == ["a.png", "b.png"]
    assert cv2.imread(str(previews[0])).shape == (48, 64, 3)

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = cli(*args)
    assert again.returncode == 0 and "0 rendered, 4 already done" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == mtimes

    (out / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n torn")            # invalid: redone
    cv2.imwrite(str(out / "b.png"), np.zeros((5, 5), np.uint8))       # wrong size: redone
    fix = run_heatmaps(dataset["ann"], dataset["images"], out, device="cpu", workers=2)  # in-process
    assert fix.counts["rendered"] == 2 and fix.skipped["already done"] == 2
    check_png(out / "a.png", dataset["rows"]["a.jpg"], (48, 64))
    assert png_size(out / "b.png") == (40, 50)

    forced = cli(*args, "--force")
    assert forced.returncode == 0 and "4 rendered, 0 already done" in forced.stdout
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_cli_exit_codes(dataset, tmp_path):
    nothing = tmp_path / "nothing.jsonl"
    nothing.write_text(json.dumps(record("missing.jpg", [], (4, 4))) + "\n"
                       + json.dumps(record("broken.jpg", [])) + "\n")
    run = cli(nothing, "--images", dataset["images"], "-o", tmp_path / "o1", "--device", "cpu")
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and run.stderr.startswith("error: ")
    assert "1 missing image" in run.stderr and "1 unreadable image" in run.stderr
    assert not (tmp_path / "o1").exists()   # a failed run leaves nothing behind

    bad_mode = cli(dataset["ann"], "--images", dataset["images"], "-o", tmp_path / "o2", "--mode", "box")
    assert bad_mode.returncode == 2 and "--mode" in bad_mode.stderr and "Traceback" not in bad_mode.stderr
    no_dir = cli(dataset["ann"], "--images", tmp_path / "nope", "-o", tmp_path / "o3")
    assert no_dir.returncode == 1 and "image folder not found" in no_dir.stderr
    usage = cli(dataset["ann"], "-o", tmp_path / "o4")   # --images missing: wrong usage
    assert usage.returncode == 2


def test_shards_split_the_work_and_person_mode(dataset, tmp_path):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "person"
    kw = dict(mode="person", device="cpu", workers=1)
    r0 = run_heatmaps(dataset["ann"], dataset["images"], out, shard="0/2", **kw)
    first = {p.name for p in out.glob("*.png")}
    r1 = run_heatmaps(dataset["ann"], dataset["images"], out, shard="1/2", **kw)
    assert r0.counts["rendered"] + r1.counts["rendered"] == 4 and first
    assert {p.name for p in out.glob("*.png")} == {"a.png", "b.png", "c.png", "d.png"} != first
    check_png(out / "a.png", dataset["rows"]["a.jpg"], (48, 64), mode="person")
    check_png(out / "c.png", dataset["rows"]["c.jpg"], (36, 30), mode="person")
    with pytest.raises(FocusError, match="shard"):
        run_heatmaps(dataset["ann"], dataset["images"], out, shard="2/2")
    assert torch.get_num_threads() == threads  # the CPU path's one-thread setting is restored

    many = tmp_path / "many_shards"
    r5 = run_heatmaps(dataset["ann"], dataset["images"], many, shard="7/8", device="cpu")  # 7 images
    assert r5.counts["images_in_shard"] == 0 and r5.counts["rendered"] == 0   # empty shard: exit 0

    garbage = tmp_path / "garbage.jsonl"
    lines = [{"image": "a.jpg", "people": "x"}, [1, 2],
             {"image": "a.jpg", "people": [{"kpts": 1, "kpts_vis": [2] * 16}]},
             {"image": "c.jpg", "people": [], "height": 36, "width": 30}]
    garbage.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"image": "a.j')  # torn tail
    rg = run_heatmaps(garbage, dataset["images"], tmp_path / "g", device="cpu")
    # c.jpg's record has no person: counted, never a blank heatmap
    assert rg.skipped["bad record"] == 3 and rg.skipped["no person"] == 1 and rg.counts["rendered"] == 1
    assert not (tmp_path / "g" / "c.png").exists()
    assert rg.examples["bad record"] == ["a.jpg", "line 2", "line 5"]
    assert rg.counts["bad_coordinates"] == 16  # kpts not a list: every labelled joint is bad
    garbage.write_text('{"image": "a.jpg", "people": "x"}\nnot json\n')
    with pytest.raises(FocusError, match=r"annotations.jsonl\)|no heatmap can be rendered \(2 bad record\)"):
        run_heatmaps(garbage, dataset["images"], tmp_path / "g2", device="cpu")
    assert not (tmp_path / "g2").exists()   # no input: nothing written, not even a report

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(FocusError, match="holds no annotation records"):
        run_heatmaps(empty, dataset["images"], tmp_path / "o")
    assert not (tmp_path / "o").exists()
    with pytest.raises(FocusError, match="min-sigma"):
        run_heatmaps(dataset["ann"], dataset["images"], tmp_path / "o", min_sigma=0)


def test_overlay_draws_heatmap_and_skeleton():
    image = np.full((60, 80, 3), 90, np.uint8)
    person = person_with({7: (40.0, 10.0), 6: (40.0, 50.0), 12: (30.0, 12.0), 13: (50.0, 12.0)})
    heat = np.zeros((60, 80), np.float32)
    heat[:, 60:] = 1.0
    out = render_overlay(image, heat, [person])
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[30, 40] > 200).all()                       # thorax–pelvis limb drawn in white
    assert out[5, 75, 2] > out[5, 75, 0]                   # hot region tinted red (JET at 1.0)
    assert np.array_equal(out[55, 5], image[55, 5])         # no heat, no skeleton: the photo as is


def _items(dataset, tmp_path):
    from focusclip.data.heatmaps import people_arrays
    from focusclip.pipeline.heatmaps.render import Item

    sizes = {"a.jpg": (48, 64), "c.jpg": (36, 30)}
    return [Item(name, dataset["images"] / name, tmp_path / f"{k}_{name}.png",
                 *people_arrays(dataset["rows"][name]["people"]), size=sizes[name])
            for k in range(5) for name in sizes]


def test_device_sink_ring_on_cpu(dataset, tmp_path):
    """The GPU path's ring of host buffers, run on the CPU device: more batches than ring slots,
    two sizes interleaved, every PNG equal to the literal heatmap."""
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from tqdm import tqdm

    from focusclip.core.report import Report
    from focusclip.pipeline.heatmaps.render import RING, DeviceSink

    items = _items(dataset, tmp_path)
    report = Report("t")
    with ThreadPoolExecutor(2) as pool, tqdm(disable=True) as bar:
        sink = DeviceSink(pool, 2, "parts", 1.0, torch.device("cpu"), report, bar)
        for k in range(0, len(items), 2):                 # batches of 1: 10 batches > RING slots
            sink.put(items[k].size, [items[k]])
            sink.put(items[k + 1].size, [items[k + 1]])
        sink.close()
    assert report.counts["rendered"] == len(items) > 3 * RING
    for item in items:
        check_png(item.dst, dataset["rows"][item.image], item.size)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_command_on_cuda_matches_cpu(dataset, tmp_path):
    cpu = run_heatmaps(dataset["ann"], dataset["images"], tmp_path / "cpu", device="cpu")
    gpu = run_heatmaps(dataset["ann"], dataset["images"], tmp_path / "gpu", device="cuda")
    assert gpu.extra["device_used"].startswith("cuda") and gpu.counts == cpu.counts
    for name in ("a.png", "b.png", "c.png", "d.png"):
        a = cv2.imread(str(tmp_path / "cpu" / name), cv2.IMREAD_UNCHANGED).astype(int)
        b = cv2.imread(str(tmp_path / "gpu" / name), cv2.IMREAD_UNCHANGED).astype(int)
        assert np.abs(a - b).max() <= 1


def test_a_second_process_on_the_same_folder_is_refused_at_once(dataset, tmp_path):
    """One writer per output folder (and shard): the second run names the holder and writes nothing."""
    import subprocess
    import sys

    out = tmp_path / "hm"
    hold = ("import sys, time\nfrom focusclip.core.lock import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        run = cli(dataset["ann"], "--images", dataset["images"], "-o", out, "--device", "cpu")
        assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
        assert f"is being written by pid {holder.pid}" in run.stderr and not out.exists()
        other_shard = cli(dataset["ann"], "--images", dataset["images"], "-o", out, "--device", "cpu",
                          "--shard", "0/2")
        assert other_shard.returncode == 0, other_shard.stderr   # a shard locks its own part
    finally:
        holder.kill()
        holder.wait()


def test_the_size_read_from_the_header_is_the_displayed_one(tmp_path):
    """A JPEG stored sideways with EXIF orientation 6 is rendered at the size training sees (upright)."""
    from PIL import Image

    from focusclip.pipeline.heatmaps.stage import image_size

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 48)).save(tmp_path / "r.jpg", exif=exif)    # stored 64 wide, 48 high
    Image.new("RGB", (64, 48)).save(tmp_path / "u.jpg")
    assert image_size(tmp_path / "r.jpg") == (64, 48)                  # (height, width) as displayed
    assert image_size(tmp_path / "u.jpg") == (48, 64)
