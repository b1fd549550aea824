"""Pose facts on people built with known angles, and on the real MPII samples."""
from __future__ import annotations

import json
import math

import pytest

from focusclip.data.geometry import (BENDS, PoseFacts, bend_word, elevation, image_facts, joint_angle,
                                     people_count, person_facts, person_size, person_x)
from focusclip.data.records import Annotation, Person
from focusclip.data.skeleton import JOINT_ID, NUM_JOINTS

W, H_IMG = 1280, 720


def make_person(joints: dict[str, tuple[float, float]], scale: float | None = 2.0, pid: int = 0,
                center=None) -> Person:
    kpts, vis = [[-1.0, -1.0] for _ in range(NUM_JOINTS)], [0] * NUM_JOINTS
    for name, (x, y) in joints.items():
        kpts[JOINT_ID[name]], vis[JOINT_ID[name]] = [float(x), float(y)], 2
    return Person(id=pid, center=center, scale=scale, kpts=kpts, kpts_vis=vis)


# An upright person facing the camera, H = scale*200 = 400 px, head length 400/6 ≈ 67 px. Their
# right side is on the viewer's left (smaller x), as in a real photo.
STANDING = {
    "head_top": (500, 60), "upper_neck": (500, 127), "thorax": (500, 140),
    "r_shoulder": (460, 150), "l_shoulder": (540, 150),
    "r_elbow": (455, 220), "r_wrist": (452, 290), "l_elbow": (545, 220), "l_wrist": (548, 290),
    "pelvis": (500, 260), "r_hip": (475, 260), "l_hip": (525, 260),
    "r_knee": (485, 360), "r_ankle": (485, 460), "l_knee": (515, 360), "l_ankle": (515, 460),
}


def facts_of(joints, scale=2.0, width=W) -> PoseFacts:
    return person_facts(make_person(joints, scale), width, H_IMG)


def transform(joints, fn):
    return {k: fn(x, y) for k, (x, y) in joints.items()}


def test_upright_standing_person():
    f = facts_of(STANDING)
    assert (f.state, f.torso) == ("standing", "upright")
    assert (f.left_arm, f.right_arm) == ("lowered", "lowered")
    assert (f.left_elbow, f.right_elbow, f.left_knee, f.right_knee) == ("straight",) * 4
    assert (f.left_leg, f.right_leg) == ("vertical", "vertical")
    assert (f.left_hand, f.right_hand) == ("at hip height", "at hip height")
    assert f.legs == "together"  # ankles 30 px = 0.075 H apart
    assert f.size_px == pytest.approx(400.0)


@pytest.mark.parametrize("angle,word", [(178, "straight"), (160, "straight"), (140, "slightly bent"),
                                        (90, "bent at a right angle"), (70, "bent at a right angle"),
                                        (40, "fully bent")])
def test_elbow_bend_from_a_constructed_angle(angle, word):
    # Upper arm straight down from the shoulder; the forearm turns by the interior angle at the elbow.
    shoulder, elbow = STANDING["l_shoulder"], (540, 230)
    t = math.radians(angle)
    wrist = (elbow[0] + 70 * math.sin(t), elbow[1] - 70 * math.cos(t))
    assert joint_angle(shoulder, elbow, wrist) == pytest.approx(angle, abs=1e-6)
    f = facts_of({**STANDING, "l_elbow": elbow, "l_wrist": wrist})
    assert f.left_elbow == word and f.left_elbow in BENDS
    assert f.right_elbow == "straight"


def test_arms_raised_above_head_horizontal_and_raised():
    arms = {"r_elbow": (430, 110), "r_wrist": (440, 30),      # wrist above the head top (y 60)
            "l_elbow": (610, 150), "l_wrist": (680, 152)}     # straight out to the side
    f = facts_of({**STANDING, **arms})
    assert f.right_arm == "raised above the head" and f.right_hand == "above the head"
    assert f.left_arm == "horizontal" and f.left_hand == "at shoulder height"
    # 40° above the horizontal, wrist below the head top and away from the head
    f = facts_of({**STANDING, "l_elbow": (590, 110), "l_wrist": (630, 75)})
    assert f.left_arm == "raised" and f.left_hand == "at head height"


def test_hand_near_the_head():
    f = facts_of({**STANDING, "r_elbow": (430, 180), "r_wrist": (470, 110)})  # 26 px from the head centre
    assert f.right_hand == "near the head"


def test_sitting_side_view():
    sit = {"head_top": (500, 100), "upper_neck": (500, 167), "thorax": (500, 180),
           "r_shoulder": (498, 185), "l_shoulder": (502, 185), "pelvis": (500, 300),
           "r_hip": (498, 300), "l_hip": (502, 300), "r_knee": (600, 305), "l_knee": (604, 305),
           "r_ankle": (600, 405), "l_ankle": (604, 405)}
    f = facts_of(sit)
    assert (f.state, f.torso) == ("sitting", "upright")
    assert (f.left_knee, f.right_knee) == ("bent at a right angle",) * 2
    # hip→ankle goes 102 px right and 105 px down: 45.8° below the horizontal, between 30° and 65°
    assert (f.left_leg, f.right_leg) == ("angled", "angled")


def test_kneeling_and_lying_and_bent_over():
    kneel = {**{k: STANDING[k] for k in ("head_top", "upper_neck", "thorax", "r_shoulder", "l_shoulder")},
             "pelvis": (500, 300), "r_hip": (490, 300), "l_hip": (510, 300),
             "r_knee": (490, 400), "l_knee": (510, 400), "r_ankle": (390, 405), "l_ankle": (410, 405)}
    kneel = transform(kneel, lambda x, y: (x, y + 40))
    assert facts_of(kneel).state == "kneeling"
    # The standing person turned 90° about the pelvis: lying, and "raised" means nothing then.
    lying = transform(STANDING, lambda x, y: (500 + (y - 260), 400 - (x - 500)))
    f = facts_of(lying)
    assert (f.state, f.torso) == ("lying", "horizontal")
    assert f.left_arm is f.right_arm is f.left_hand is None
    # Upper body horizontal over vertical legs: bent over, still standing.
    upper = {k for k in STANDING if k not in ("pelvis", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle",
                                               "l_ankle")}
    bent = {k: ((500 + (260 - y), 260 + (x - 500) * 0.2) if k in upper else v)
            for k, v in STANDING.items() for x, y in [v]}
    f = facts_of(bent)
    assert (f.state, f.torso) == ("standing", "horizontal")


def test_legs_apart_together_crossed():
    apart = {**STANDING, "r_knee": (440, 360), "r_ankle": (420, 460), "l_knee": (560, 360),
             "l_ankle": (580, 460)}
    assert facts_of(apart).legs == "apart"
    crossed = {**STANDING, "r_knee": (495, 360), "r_ankle": (540, 460), "l_knee": (505, 360),
               "l_ankle": (460, 460)}
    assert facts_of(crossed).legs == "crossed"


def test_unlabelled_joints_give_no_facts():
    no_wrist = {k: v for k, v in STANDING.items() if k != "l_wrist"}
    f = facts_of(no_wrist)
    assert f.left_hand is None and f.left_elbow is None
    assert f.left_arm == "lowered"  # still known from shoulder→elbow
    no_legs = {k: v for k, v in STANDING.items() if "knee" not in k and "ankle" not in k}
    f = facts_of(no_legs)
    assert f.state is f.legs is f.left_knee is f.right_leg is None
    assert f.torso == "upright"
    empty = person_facts(make_person({}, scale=2.0, center=[100.0, 300.0]), W, H_IMG)
    body = ("state", "torso", "left_elbow", "right_elbow", "left_knee", "right_knee", "left_arm", "right_arm",
            "left_leg", "right_leg", "left_hand", "right_hand", "legs")
    assert all(getattr(empty, k) is None for k in body)
    assert empty.position == "left" and empty.labelled == 0


def test_facts_are_relative_to_the_person_not_pixels():
    base = facts_of(STANDING)
    for k in (0.1, 3.0):  # a tiny and a huge copy (scale follows), anywhere in the frame
        moved = transform(STANDING, lambda x, y, k=k: (100 + k * (x - 500) + 500, 50 + k * y))
        f = person_facts(make_person(moved, scale=2.0 * k), 100000, 100000)
        assert {n: v for n, v in f.to_dict().items() if n not in ("size_px", "x", "position")} == \
               {n: v for n, v in base.to_dict().items() if n not in ("size_px", "x", "position")}


def test_size_without_scale_comes_from_the_body():
    size = person_size(make_person(STANDING, scale=None))
    assert size == pytest.approx(6 * 67, rel=0.02)  # MPII: scale*200 = 6 head lengths
    assert facts_of(STANDING, scale=None).state == "standing"


def test_left_and_right_are_the_persons_own():
    raised_left = {**STANDING, "l_elbow": (600, 110), "l_wrist": (640, 60)}
    f = facts_of(raised_left)
    assert (f.left_arm, f.right_arm) == ("raised", "lowered")
    # Mirror the photo (a back view): the joint labels keep their meaning, so the facts do too.
    mirrored = person_facts(make_person(transform(raised_left, lambda x, y: (W - x, y))), W, H_IMG)
    assert (mirrored.left_arm, mirrored.right_arm) == ("raised", "lowered")


def test_position_order_depth_among_people():
    people = [make_person(transform(STANDING, lambda x, y, dx=dx, k=k: (dx + k * (x - 500), k * y)),
                          scale=2.0 * k, pid=i)
              for i, (dx, k) in enumerate([(1100, 1.0), (150, 1.5), (640, 0.5)])]
    ann = Annotation(image="a.jpg", split="train", width=W, height=H_IMG, people=people)
    facts = image_facts(ann)
    assert [f.position for f in facts] == ["right", "left", "centre"]
    assert [f.order for f in facts] == [2, 0, 1]
    assert [f.depth for f in facts] == ["middle", "front", "back"]
    assert [f.index for f in facts] == [0, 1, 2]
    same = Annotation(image="b.jpg", split="train", width=None, height=None, people=people[:1] * 2)
    assert [f.depth for f in image_facts(same)] == [None, None]
    assert [f.position for f in image_facts(same)] == [None, None]  # no width, no thirds


def test_people_without_joints_are_counted():
    ann = Annotation(image="c.jpg", split="train", width=W, height=H_IMG,
                     people=[make_person(STANDING), make_person({}, pid=1, center=[1000.0, 300.0])])
    facts = image_facts(ann)
    assert len(facts) == people_count(ann) == 2
    assert facts[1].state is None and facts[1].position == "right"


def _mpii_json_annotations(folder) -> list[Annotation]:
    """The HRNet/mmpose JSON keeps the .mat's 1-based values; joints_vis means 'labelled'."""
    from PIL import Image

    out = []
    for e in json.loads((folder / "test_mpii.json").read_text()):
        w, h = Image.open(folder / e["image"]).size
        kpts = [[x - 1.0, y - 1.0] if v else [-1.0, -1.0] for (x, y), v in zip(e["joints"], e["joints_vis"])]
        p = Person(id=0, center=[c - 1.0 for c in e["center"]], scale=e["scale"], kpts=kpts,
                   kpts_vis=[2 if v else 0 for v in e["joints_vis"]])
        out.append(Annotation(image=e["image"], split="train", width=w, height=h, people=[p]))
    return out


def test_real_mpii_samples(mpii_samples):
    facts = {a.image: image_facts(a)[0] for a in _mpii_json_annotations(mpii_samples)}
    # Expectations read off the photos by eye.
    curler = facts["005808361.jpg"]   # wheelchair curler, right hand raised to the face
    assert (curler.state, curler.right_hand, curler.left_arm, curler.position) == \
           ("sitting", "near the head", "lowered", "right")
    chair = facts["052475643.jpg"]    # man on a chair, hands raised to the head
    assert chair.state == "sitting" and chair.right_hand == "near the head"
    back = facts["051423444.jpg"]     # seen from behind, left arm stretched out sideways
    assert (back.state, back.left_arm, back.position) == ("standing", "horizontal", "right")
    assert back.left_knee is None     # ankles unlabelled
    truck = facts["004645041.jpg"]    # standing at a truck, left arm hanging
    assert (truck.state, truck.left_arm, truck.torso) == ("standing", "lowered", "upright")
    engine = facts["060754485.jpg"]   # standing, both arms down
    assert (engine.state, engine.left_arm, engine.right_arm) == ("standing", "lowered", "lowered")
    scales = {e["image"]: e["scale"] for e in json.loads((mpii_samples / "test_mpii.json").read_text())}
    assert all(f.size_px == pytest.approx(200 * scales[name]) for name, f in facts.items())


# --- the numeric helpers under the facts -------------------------------------------------------------
@pytest.mark.parametrize("a, b, deg", [((0, 0), (10, 0), 0.0), ((0, 10), (10, 0), 45.0), ((0, 0), (0, -5), 90.0),
                                       ((0, 0), (0, 5), -90.0), ((10, 10), (0, 0), 45.0)])
def test_elevation_is_above_the_image_horizontal_whichever_way_x_goes(a, b, deg):
    assert elevation(a, b) == pytest.approx(deg)             # image y grows downwards


@pytest.mark.parametrize("angle, word", [(180, "straight"), (155, "straight"), (154.99, "slightly bent"),
                                         (120, "slightly bent"), (119.99, "bent at a right angle"),
                                         (65, "bent at a right angle"), (64.99, "fully bent"), (0, "fully bent")])
def test_bend_word_bounds_are_inclusive_from_below(angle, word):
    assert bend_word(angle) == word


def test_person_size_falls_back_from_scale_to_segments_to_spread():
    assert person_size(make_person(STANDING, scale=1.5)) == pytest.approx(300.0)      # scale · 200
    # no scale: the largest segment / its typical share of H; here the forearm 30 px / 0.19
    assert person_size(make_person({"l_elbow": (0, 0), "l_wrist": (0, 30)}, scale=None)) == \
        pytest.approx(30 / 0.19)
    # two joints that form no segment: their spread (3-4-5 triangle)
    assert person_size(make_person({"head_top": (0, 0), "l_ankle": (3, 4)}, scale=None)) == pytest.approx(5.0)
    assert person_size(make_person({"head_top": (1, 1)}, scale=None)) is None
    assert person_size(make_person({"head_top": (1, 1), "l_ankle": (1, 1)}, scale=None)) is None


def test_person_x_is_the_mean_labelled_joint_else_the_mpii_centre():
    assert person_x(make_person({"head_top": (10, 0), "l_ankle": (30, 9), "r_ankle": (50, 9)})) == 30.0
    assert person_x(make_person({}, center=[77.5, 3.0])) == 77.5
    assert person_x(make_person({})) is None
