"""The synthetic world: poses, visibility, the MPII `.mat` round trip through `focus-data convert`,
determinism, and eval sets that the eval readers read."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from focusclip.core.io import read_jsonl
from focusclip.data.records import Annotation
from focusclip.data.skeleton import JOINT_ID as J
from focusclip.data.synthetic.world import WorldConfig, generate_mpii, training_image
from focusclip.data.synthetic.evalsets import DRAWN_CLASSES, MALFORMED_UTK, STANFORD40_CLASSES
from focusclip.data.synthetic.pose import ACTIVITIES, FAMILIES, sample_pose
from focusclip.data.synthetic.render import Canvas, DrawnPerson, visibility
from focusclip.pipeline.synth import run_synth
from tests.conftest import console_script


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    run_synth(out, n_train=40, n_eval=21, seed=3, progress=False)
    return out


# ---- poses -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_gives_a_whole_upright_skeleton(family):
    rng = np.random.default_rng(0)
    k, spec = sample_pose(family, False, rng)
    assert k.shape == (16, 2) and np.isfinite(k).all()
    assert k[:, 1].max() == pytest.approx(-spec.lift)          # feet on the ground (or lifted)
    # bone lengths are those of a person about one unit tall
    assert 0.2 < np.linalg.norm(k[J["r_knee"]] - k[J["r_hip"]]) < 0.3
    if family != "lying":                                       # the head is above the pelvis
        assert k[J["head_top"], 1] < k[J["pelvis"], 1]


def test_families_look_like_their_names():
    rng = np.random.default_rng(1)
    for _ in range(20):
        up, _ = sample_pose("arms_raised", False, rng)
        assert up[J["r_wrist"], 1] < up[J["head_top"], 1] and up[J["l_wrist"], 1] < up[J["head_top"], 1]
        lying, _ = sample_pose("lying", False, rng)
        assert np.ptp(lying[:, 0]) > 2 * np.ptp(lying[:, 1])
        sit, _ = sample_pose("sitting", False, rng)            # thighs roughly horizontal
        thigh = sit[J["r_knee"]] - sit[J["r_hip"]]
        assert abs(thigh[0]) > 2 * abs(thigh[1])
        wave, _ = sample_pose("waving", False, rng)           # one hand up, the other down
        assert wave[J["r_wrist"], 1] < wave[J["upper_neck"], 1] < wave[J["l_wrist"], 1]


def test_children_have_bigger_heads_for_their_height():
    rng = np.random.default_rng(2)

    def head_ratio(child):
        k, _ = sample_pose("standing", child, rng)
        return np.linalg.norm(k[J["head_top"]] - k[J["upper_neck"]]) / np.ptp(k[:, 1])

    adults = [head_ratio(False) for _ in range(30)]
    children = [head_ratio(True) for _ in range(30)]
    assert min(children) > max(adults)


def test_visibility_marks_covered_outside_and_visible_joints():
    cv = Canvas.blank(100, 80)
    kpts = np.full((16, 2), 50.0)
    kpts[0] = (150.0, 10.0)                     # outside the image
    kpts[1] = (20.0, 20.0)                      # will be covered
    person = DrawnPerson(kpts=kpts, height_px=60)
    person.joint_layer[:] = cv.layer()
    cv.layers[15:25, 15:25] = cv.layer()        # something drawn later over joint 1
    vis = visibility(cv, person, unlabelled_prob=0.0, rng=np.random.default_rng(0))
    assert vis[0] == 0 and vis[1] == 1 and vis[2:] == [2] * 14


# ---- the MPII .mat round trip ----------------------------------------------------------------------

def test_mat_round_trips_through_focus_data_convert(world, tmp_path):
    truth = [Annotation.from_dict(d) for d in read_jsonl(world / "mpii" / "truth.jsonl")]
    out = tmp_path / "annotations.jsonl"
    res = subprocess.run([console_script("focus-data"), "convert", "mpii",
                          str(world / "mpii" / "mpii_human_pose_v1_u12_1.mat"), "-o", str(out),
                          "--images", str(world / "mpii" / "images")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = {d["image"]: d for d in read_jsonl(out)}
    assert sorted(got) == sorted(t.image for t in truth)
    for t in truth:
        g = got[t.image]
        assert (g["split"] == "test") == (t.split == "test")
        assert (g["width"], g["height"]) == (WorldConfig().width, WorldConfig().height)
        assert (g["activity_id"], g["category"], g["activity"]) == (t.activity_id, t.category, t.activity)
        assert (g["video_id"], g["video_frame"], g["single_person"]) == (t.video_id, t.video_frame, t.single_person)
        assert len(g["people"]) == len(t.people)
        for gp, tp in zip(g["people"], t.people):
            assert gp["kpts"] == tp.kpts and gp["kpts_vis"] == tp.kpts_vis    # exact, 0-based
            assert gp["center"] == tp.center and gp["scale"] == pytest.approx(tp.scale)
            assert gp["head_box"] == tp.head_box


def test_world_has_occluded_unlabelled_and_multi_person_images(world):
    truth = [Annotation.from_dict(d) for d in read_jsonl(world / "mpii" / "truth.jsonl")]
    train = [t for t in truth if t.split != "test"]
    vis = [v for t in train for p in t.people for v in p.kpts_vis]
    assert vis.count(1) > 0 and vis.count(0) > 0 and vis.count(2) > len(vis) / 2
    assert {len(t.people) for t in truth} >= {1, 2}
    names = {a.name for a in ACTIVITIES}
    assert all(t.activity in names and t.activity_id > 0 for t in train)
    for t in truth:                                          # joints inside the image when labelled
        for p in t.people:
            for (x, y), v in zip(p.kpts, p.kpts_vis):
                assert (v == 0) or (0 <= x < WorldConfig().width and 0 <= y < WorldConfig().height)


# ---- determinism -----------------------------------------------------------------------------------

def _digest(folder: Path) -> dict[str, str]:
    """File hashes; a .mat without its 116-byte text header, which holds the creation time."""
    def content(p: Path) -> bytes:
        return p.read_bytes()[116:] if p.suffix == ".mat" else p.read_bytes()

    return {str(p.relative_to(folder)): hashlib.sha256(content(p)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "report.json"}


def test_same_seed_same_world_other_seed_other_world(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        run_synth(tmp_path / name, n_train=6, n_eval=7, seed=seed, progress=False)
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() != c.keys() or a != c
    # image i does not depend on how many images are drawn
    rec, img = training_image(5, 3, WorldConfig())
    rec2, img2 = training_image(5, 3, WorldConfig())
    assert rec == rec2 and np.array_equal(img, img2)


def test_generate_mpii_prefix_is_stable(tmp_path):
    short = generate_mpii(tmp_path / "s", 3, seed=9)
    long = generate_mpii(tmp_path / "l", 5, seed=9)
    assert short == long[:3]


def test_worker_processes_draw_the_same_world(tmp_path):
    from focusclip.data.synthetic.world import POOL_CHUNK

    n = 2 * POOL_CHUNK + 5                     # enough for the pool, with a partial last chunk
    ticks = []
    one = generate_mpii(tmp_path / "one", n, seed=4)
    two = generate_mpii(tmp_path / "two", n, seed=4, workers=2, progress=ticks.append)
    assert one == two and len(ticks) == n
    for name in ["truth.jsonl", *(f"images/{r.image}" for r in one)]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    mats = [(tmp_path / d / "mpii_human_pose_v1_u12_1.mat").read_bytes() for d in ("one", "two")]
    assert mats[0][116:] == mats[1][116:]     # after the 116-byte text header, which holds the time


# ---- eval sets, read by the eval readers -----------------------------------------------------------

def test_stanford40_layout_is_read_by_the_eval_reader(world):
    from focusclip.eval.readers import read_stanford40

    split = read_stanford40(world / "eval", "test")
    assert split.classes == list(STANFORD40_CLASSES)
    labels = [s.labels[0] for s in split.samples]
    assert set(labels) == set(DRAWN_CLASSES) and len(labels) == 21 and not split.skipped
    for s in split.samples:   # the XML label agrees with the file name
        assert Path(s.image.path).name.rsplit("_", 1)[0] == s.labels[0]
    header = (world / "eval/stanford40/ImageSplits/actions.txt").read_text().splitlines()[0]
    assert header == "action_name\tnumber_of_images"
    assert len(read_stanford40(world / "eval", "train").samples) == len(DRAWN_CLASSES)


def test_utkface_layout_is_read_by_the_eval_reader(world):
    from focusclip.eval.readers import read_for_task
    from focusclip.eval.tasks import all_tasks

    task = next(t for t in all_tasks() if t.id == "utkface-age")
    split = read_for_task(task, world / "eval")
    labels = [s.labels[0] for s in split.samples]
    assert len(labels) == 21 and set(labels) == {"child", "adult"}
    assert split.skipped == {"malformed file name": 1}
    assert (world / "eval/utkface/UTKFace" / MALFORMED_UTK).is_file()


# ---- the command -----------------------------------------------------------------------------------

def test_synth_command_writes_reuses_and_refuses_other_options(tmp_path):
    exe, out = console_script("focus-data"), tmp_path / "w"
    first = subprocess.run([exe, "synth", "-o", str(out), "--n-train", "5", "--n-eval", "7"],
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "wrote 5 images" in first.stdout
    assert len(list((out / "mpii" / "images").glob("*.jpg"))) == 5
    again = subprocess.run([exe, "synth", "-o", str(out), "--n-train", "5", "--n-eval", "7"],
                           capture_output=True, text=True)
    assert again.returncode == 0 and "kept (already generated)" in again.stdout
    other = subprocess.run([exe, "synth", "-o", str(out), "--n-train", "6", "--n-eval", "7"],
                           capture_output=True, text=True)
    assert other.returncode == 1 and other.stderr.startswith("error: ") and "--force" in other.stderr
    assert "Traceback" not in other.stderr
    bad = subprocess.run([exe, "synth", "-o", str(out), "--n-train", "0"], capture_output=True, text=True)
    assert bad.returncode == 1 and "--n-train" in bad.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["images"] == 5 and report["options"]["n_train"] == 5
