"""The bystander world (`focus-data synth --bystanders K`): K unannotated people beside each image's
subjects, each doing another activity, sometimes larger or more central than the subject; never in
the record, so never in the heatmap or the description; the eval readers and `convert` read it as
any world; K = 0 gives today's files byte for byte."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from focusclip.core.io import read_jsonl
from focusclip.data.geometry import STATES
from focusclip.data.heatmaps import render_heatmaps
from focusclip.data.records import Annotation, Person
from focusclip.data.synthetic.evalsets import DRAWN_CLASSES, generate_stanford40, stanford40_bystanders, stanford40_scene
from focusclip.data.synthetic.pose import ACTIVITY_BY_FAMILY
from focusclip.data.synthetic.world import (WorldConfig, encode_jpeg, image_rng, render_scene, training_image,
                                            training_scene)
from focusclip.pipeline.describe.template import template_description
from focusclip.pipeline.synth import run_synth
from tests.conftest import console_script

K2 = WorldConfig(bystanders=2)

# Today's world, hashed with the tree before bystanders existed (commit b800d70) as the test below
# hashes it: the raw pixels and records of 24 training images and 7 Stanford 40 scenes of seed 7, and
# every file but the .mat (its header holds the time) and report.json of run_synth(12, 14, seed=5).
TODAY_PIXELS = "a3416b0642b8d172830d66e93018232482b51dd186ae445aa72c0225fd574518"
TODAY_RECORDS = "c69a5ec5db16827751e31ceb5c4150aeba8d0467477208356e7e418c5542ca0d"
TODAY_FILES = "cc03c668ffb6479d1567e80fe6cc16c8b1bf9993c248ec14662de59669f57739"


def test_without_bystanders_the_world_is_todays_byte_for_byte(tmp_path):
    pixels, records = hashlib.sha256(), hashlib.sha256()
    for i in range(24):
        rec, img = training_image(7, i, WorldConfig(bystanders=0))
        pixels.update(img.tobytes())
        records.update(json.dumps(rec.to_dict(), sort_keys=True).encode())
    for i, action in enumerate(sorted(DRAWN_CLASSES)):
        scene, _ = stanford40_scene(7, i, action, WorldConfig())
        pixels.update(scene.image.tobytes())
        records.update(np.round(scene.people[0].kpts, 3).tobytes())
        assert scene.bystanders == []
    assert (pixels.hexdigest(), records.hexdigest()) == (TODAY_PIXELS, TODAY_RECORDS)
    run_synth(tmp_path, n_train=12, n_eval=14, seed=5, progress=False, workers=1)
    files = hashlib.sha256()
    for p in sorted(tmp_path.rglob("*")):
        if p.is_file() and p.name != "report.json" and p.suffix != ".mat":
            files.update(str(p.relative_to(tmp_path)).encode())
            files.update(p.read_bytes())
    assert files.hexdigest() == TODAY_FILES


def _q(v: float) -> float:
    return round(float(v) * 4) / 4


def test_bystanders_are_drawn_doing_other_activities_and_are_in_no_record():
    for i in range(40):
        rec, scene = training_scene(11, i, K2)
        assert len(scene.bystanders) == 2 and len(rec.people) == len(scene.people) >= 1
        family = scene.people[0].family
        assert all(p.family == family for p in scene.people)
        assert all(b.family != family for b in scene.bystanders)            # other activities
        if rec.split != "test":
            assert rec.activity == ACTIVITY_BY_FAMILY[family].name
        drawn = [[_q(x), _q(y)] for p in scene.people for x, y in p.kpts]
        for b in scene.bystanders:
            theirs = [[_q(x), _q(y)] for x, y in b.kpts]
            for person in rec.people:                                         # no record holds their joints
                assert not any(k in theirs for k, v in zip(person.kpts, person.kpts_vis) if v > 0)
        for person in rec.people:                                             # every labelled joint a subject's
            assert all(k in drawn for k, v in zip(person.kpts, person.kpts_vis) if v > 0)
        # the pixels are the scene's, bystanders included
        assert np.array_equal(training_image(11, i, K2)[1], scene.image)


def test_bystanders_are_sometimes_larger_and_sometimes_more_central_than_the_subject():
    larger = central = 0
    n = 300
    for i in range(n):
        scene, (w, _) = stanford40_scene(2, i, sorted(DRAWN_CLASSES)[i % 7], WorldConfig(bystanders=1))
        subject, other = scene.people[0], scene.bystanders[0]
        larger += other.height_px > subject.height_px
        centre = lambda p: abs((p.bbox()[0] + p.bbox()[2]) / 2 - w / 2)   # noqa: E731
        central += centre(other) < centre(subject)
    assert 0.05 < larger / n < 0.5      # sometimes the larger one, less often than not
    assert 0.2 < central / n < 0.8      # the slots are chosen at random


def _as_person(drawn) -> Person:
    """A record of a drawn person, all joints labelled (what annotating a bystander would give)."""
    return Person(id=9, center=[0.0, 0.0], scale=drawn.height_px / 200, kpts=drawn.kpts.tolist(), kpts_vis=[2] * 16)


def test_the_heatmap_and_the_description_cover_the_subject_only():
    theirs = []
    for i in range(60):
        rec, scene = training_scene(13, i, K2)
        if rec.split == "test":
            continue
        shape = (rec.height, rec.width)
        heat = render_heatmaps(rec.people, shape).numpy()
        subject_joints = np.concatenate([p.kpts for p in scene.people])                  # [16·n, 2]
        with_them = render_heatmaps(rec.people + [_as_person(b) for b in scene.bystanders], shape).numpy()
        for b in scene.bystanders:          # a bystander's joints far from every subject's: no heat
            for x, y in b.kpts:
                inside = 0 <= x < rec.width and 0 <= y < rec.height
                if inside and np.linalg.norm(subject_joints - [x, y], axis=1).min() > 40:
                    assert heat[int(y), int(x)] < 0.05, i
                    theirs.append(with_them[int(y), int(x)])    # what a heatmap of them would hold there
        text = template_description(Annotation.from_dict(rec.to_dict()))
        names = {ACTIVITY_BY_FAMILY[b.family].name for b in scene.bystanders} - set(STATES)
        names -= {ACTIVITY_BY_FAMILY[scene.people[0].family].name}
        assert not any(name in text for name in names), (text, names)
        assert text.startswith(("There is one person", "There are")) and (
            ("one person" in text) == (len(rec.people) == 1))            # the subjects' count, not the frame's
    assert len(theirs) > 100 and np.mean(theirs) > 0.3


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bystander_world")
    run_synth(out, n_train=30, n_eval=21, seed=3, progress=False, bystanders=1)
    return out


def test_the_readers_see_the_same_layouts(world, tmp_path):
    from focusclip.eval.readers import read_stanford40

    out = tmp_path / "annotations.jsonl"
    res = subprocess.run([console_script("focus-data"), "convert", "mpii",
                          str(world / "mpii" / "mpii_human_pose_v1_u12_1.mat"), "-o", str(out),
                          "--images", str(world / "mpii" / "images")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    truth = {t["image"]: t for t in read_jsonl(world / "mpii" / "truth.jsonl")}
    got = {g["image"]: g for g in read_jsonl(out)}
    assert got.keys() == truth.keys() and len(got) == 30
    for name, g in got.items():
        assert [p["kpts"] for p in g["people"]] == [p["kpts"] for p in truth[name]["people"]]
    split = read_stanford40(world / "eval", "test")
    assert {s.labels[0] for s in split.samples} == set(DRAWN_CLASSES) and len(split.samples) == 21
    assert not split.skipped
    # each XML box is the subject's: the scene redrawn from its stream has one subject and one bystander
    per_train = len(read_stanford40(world / "eval", "train").samples) // len(DRAWN_CLASSES)
    first = sorted(DRAWN_CLASSES)[0]
    scene, _ = stanford40_scene(3, per_train, first, WorldConfig(bystanders=1))   # that class's first test image
    xml = (world / "eval/stanford40/XMLAnnotations" / f"{first}_{per_train + 1:03d}.xml").read_text()
    x0 = int(round(max(0, scene.people[0].bbox()[0])))
    assert f"<xmin>{x0}</xmin>" in xml and len(scene.bystanders) == 1
    report = json.loads((world / "report.json").read_text())
    assert report["options"]["world"]["bystanders"] == 1


def test_the_command_takes_bystanders_and_keeps_worlds_apart(tmp_path):
    exe, out = console_script("focus-data"), tmp_path / "w"
    args = [exe, "synth", "-o", str(out), "--n-train", "4", "--n-eval", "7"]
    first = subprocess.run(args + ["--bystanders", "1"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert json.loads((out / "report.json").read_text())["options"]["world"]["bystanders"] == 1
    other = subprocess.run(args, capture_output=True, text=True)              # K = 0 into a K = 1 world
    assert other.returncode == 1 and "other options" in other.stderr and "Traceback" not in other.stderr
    bad = subprocess.run(args + ["--bystanders", "9"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --bystanders: must be between 0 and 4, got 9")
    assert len(bad.stderr.strip().splitlines()) == 1
    # a world written before bystanders existed (no key in its report) is the K = 0 world: kept
    plain = tmp_path / "plain"
    run_synth(plain, n_train=4, n_eval=7, seed=0, progress=False)
    report = json.loads((plain / "report.json").read_text())
    del report["options"]["world"]["bystanders"]
    (plain / "report.json").write_text(json.dumps(report))
    kept = subprocess.run([exe, "synth", "-o", str(plain), "--n-train", "4", "--n-eval", "7"],
                          capture_output=True, text=True)
    assert kept.returncode == 0 and "kept (already generated)" in kept.stdout


def test_stanford40_bystanders_names_what_each_written_test_image_holds(tmp_path):
    """The benchmark's diagnostic (which answers name a bystander's activity) rests on this: for every
    test image generate_stanford40 wrote, the scene drawn again is the written one (the same JPEG bytes)
    and its bystanders are listed with their Stanford 40 class (None for a family no class draws),
    never the subject's."""
    cfg = WorldConfig(bystanders=1)
    splits = generate_stanford40(tmp_path, 14, seed=3, cfg=cfg)
    listed = stanford40_bystanders(14, seed=3, cfg=cfg)
    written = sorted(n for s in splits.values() for n in s["test"])
    assert sorted(listed) == written
    by_family = {f: c for c, f in DRAWN_CLASSES.items()}
    for name, (bystander,) in listed.items():
        action = name.rsplit("_", 1)[0]
        assert bystander["family"] != DRAWN_CLASSES[action]
        assert bystander["action"] == by_family.get(bystander["family"])
        assert 0.3 < bystander["height_ratio"] < 1.6
    index = {n: i for i, n in enumerate(n for a in sorted(DRAWN_CLASSES) for n in
                                        sorted(splits[a]["train"] + splits[a]["test"]))}
    for name in written[:3]:
        action = name.rsplit("_", 1)[0]
        scene, _ = stanford40_scene(3, index[name], action, cfg)
        assert encode_jpeg(scene.image, cfg.jpeg_quality) == (tmp_path / "stanford40" / "JPEGImages" / name).read_bytes()
        assert [b.family for b in scene.bystanders] == [listed[name][0]["family"]]
    assert stanford40_bystanders(14, seed=3, cfg=WorldConfig()) == {n: [] for n in written}
