"""The geometry checks (people count, posture, arms) against real MPII keypoints and generated people.

Generated people are built by forward kinematics (data/synthetic/pose.py `skeleton`) with the limb
angles chosen here, so what each arm and leg does is known by construction. Left and right are the
person's own, as in MPII joint names.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from focusclip.converters.mpii_json import read_mpii_json
from focusclip.data.records import Annotation, Person, write_annotations
from focusclip.data.synthetic.pose import ADULT, PoseSpec, skeleton
from focusclip.pipeline.filter.stage import rejected_path_for, run_filter
from focusclip.pipeline.filter.checks import CheckContext, FilterConfig, check_arms, check_people_count, check_posture

# Angles: 0 = straight down the image, 180 = straight up (data/synthetic/pose.py).
STAND = PoseSpec()
LEFT_UP = PoseSpec(l_upper_arm=170, l_forearm=175)        # left arm straight up, right arm down
RIGHT_UP = PoseSpec(r_upper_arm=-170, r_forearm=-175)     # right arm straight up, left arm down
SIT = PoseSpec(side=True, r_thigh=90, r_shin=0, l_thigh=88, l_shin=3)     # thighs level, shins down
KNEEL = PoseSpec(side=True, r_thigh=5, r_shin=-90, l_thigh=80, l_shin=0)  # one shin on the floor
LIE = PoseSpec(torso=-90, side=True, r_thigh=90, r_shin=90, l_thigh=92, l_shin=94,
               r_upper_arm=80, r_forearm=85, l_upper_arm=-95, l_forearm=-90)


def person(pid: int, spec: PoseSpec, x: float, height: float = 300.0, ground: float = 700.0) -> Person:
    """A fully labelled person `height` px tall standing on y=`ground`, pelvis at x."""
    k = skeleton(spec, ADULT)           # (16, 2) in height units, y down, pelvis at the origin
    k[:, 1] -= k[:, 1].max()            # feet on y = 0
    pts = k * height + np.array([x, ground])
    return Person(id=pid, center=[x, ground - height / 2], scale=height / 200, kpts=pts.tolist(),
                  kpts_vis=[2] * 16)


def scene(*specs: PoseSpec) -> Annotation:
    """People left to right across a 1600 px wide image, one per third when there are three."""
    xs = {1: [800], 2: [300, 1300], 3: [250, 800, 1350]}[len(specs)]
    return Annotation(image="gen.jpg", split="train", width=1600, height=800,
                      people=[person(i, s, x) for i, (s, x) in enumerate(zip(specs, xs))])


def _rec(text: str) -> dict:
    return {"image": "gen.jpg", "describer": "t", "prompt_sha": "s", "description": text}


def judge(check, text: str, ann: Annotation, **cfg) -> str | None:
    return check(_rec(text), CheckContext(ann, FilterConfig(**cfg)))


# --- generated people --------------------------------------------------------------------------

def test_left_vs_right_arm_raised_generated():
    ann = scene(LEFT_UP)
    assert judge(check_arms, "The person is standing with their left arm raised above their head.", ann) is None
    assert judge(check_arms, "Their right arm hangs down by their side.", ann) is None
    why = judge(check_arms, "The person is standing with their right arm raised above their head.", ann)
    assert why and "right arm lowered" in why
    why = judge(check_arms, "Their left arm is lowered.", ann)
    assert why and "left arm raised above the head" in why
    # The mirror image: the same words swap verdicts.
    ann = scene(RIGHT_UP)
    assert judge(check_arms, "They are raising their right hand.", ann) is None
    assert "left arm lowered" in judge(check_arms, "They are raising their left hand.", ann)


def test_arm_gap_only_rejects_clear_contradictions():
    ann = scene(STAND)  # both arms lowered
    assert judge(check_arms, "Their left arm is held at shoulder height.", ann) is None   # 1 rank off
    assert judge(check_arms, "Their left arm is raised.", ann)                           # 2 ranks off
    assert judge(check_arms, "Their left arm is raised.", ann, arm_level_gap=3) is None
    assert judge(check_arms, "Their left arm is not raised.", ann) is None               # negated
    assert judge(check_arms, "Both arms are raised.", ann)
    assert judge(check_arms, "Both arms are down.", ann) is None


def test_sitting_vs_standing_generated():
    for spec, state in ((STAND, "standing"), (SIT, "sitting"), (KNEEL, "kneeling"), (LIE, "lying")):
        ann = scene(spec)
        assert judge(check_posture, f"There is one person in the image. The person is {state}.", ann) is None
    assert "say sitting" in judge(check_posture, "The person is standing on a bench.", scene(SIT))
    assert "say standing" in judge(check_posture, "The person sits on the ground.", scene(STAND))
    assert "say lying" in judge(check_posture, "The person is kneeling.", scene(LIE))
    assert "say standing" in judge(check_posture, "The person is lying down.", scene(STAND))
    # Sitting on the heels and kneeling look alike in 2D: compatible by default, not when configured.
    assert judge(check_posture, "The person is sitting.", scene(KNEEL)) is None
    assert judge(check_posture, "The person is sitting.", scene(KNEEL), compatible_postures=())


def test_person_count_generated():
    ann = scene(STAND, SIT)
    assert judge(check_people_count, "There are two people in the image.", ann) is None
    assert "annotation has 2" in judge(check_people_count, "There is one person in the image.", ann)
    assert "says 3" in judge(check_people_count, "There are 3 people in the image.", ann)


def test_claims_follow_the_named_person():
    ann = scene(LEFT_UP, SIT)  # left of the image: standing, left arm up; right: sitting, arms down
    good = ("There are two people in the image. The person on the left is standing with their left arm "
            "raised. The person on the right is sitting; both arms are lowered.")
    assert judge(check_arms, good, ann) is None and judge(check_posture, good, ann) is None
    swapped = ("There are two people in the image. The person on the left is sitting with both arms "
               "lowered. The person on the right is standing with their left arm raised.")
    assert "person 1 say standing" in judge(check_posture, swapped, ann)
    assert "person 1 say left arm raised above the head" in judge(check_arms, swapped, ann)
    # Without scoping a claim only has to fit someone: the swapped text passes.
    assert judge(check_posture, swapped, ann, scope_by_person=False) is None
    # Record order ("person 2") and rank from the left ("the rightmost person") name people too.
    assert judge(check_posture, "Person 2 is standing.", ann)
    assert judge(check_posture, "The rightmost person is standing.", ann)
    assert judge(check_posture, "The leftmost person is standing.", ann) is None


def test_unattributed_claims_need_everyone_to_clash():
    ann = scene(STAND, SIT)
    assert judge(check_posture, "There are two people; one of them is sitting.", ann) is None
    assert "every person" in judge(check_posture, "There are two people; someone is kneeling.",
                                   scene(STAND, STAND), compatible_postures=())


def test_unknown_facts_never_contradict():
    ann = scene(LIE)   # torso horizontal: arm orientations are unknown (None)
    assert judge(check_arms, "The person is lying with their left arm raised.", ann) is None
    blank = Annotation(image="gen.jpg", split="train", people=[Person(id=0)])  # no labelled joints
    assert judge(check_posture, "The person is standing.", blank) is None
    assert judge(check_arms, "Their left arm is raised.", blank) is None


# --- real MPII keypoints -----------------------------------------------------------------------
# ../shared/samples/mpii (HRNet/mmpose JSON, converted by converters/mpii_json.py). What the photos
# show, checked by eye: 005808361 a woman in a wheelchair (sitting), her left arm down on her lap,
# right hand at her ear; 004645041 a man standing by a truck, his right arm reaching out
# horizontally to the engine, his left arm hanging; 060754485 a man standing, both arms down.

@pytest.fixture
def mpii(mpii_samples) -> dict[str, Annotation]:
    return {a.image: a for a in read_mpii_json(mpii_samples / "test_mpii.json")}


def test_sitting_vs_standing_real(mpii):
    wheelchair = mpii["005808361.jpg"]
    assert judge(check_posture, "There is one person in the image. The person is sitting in a wheelchair.",
                 wheelchair) is None
    assert "say sitting" in judge(check_posture, "The person is standing on the ice.", wheelchair)
    truck = mpii["004645041.jpg"]
    assert judge(check_posture, "The person is standing next to a truck.", truck) is None
    assert "say standing" in judge(check_posture, "The person is sitting next to a truck.", truck)


def test_left_vs_right_arm_real(mpii):
    truck = mpii["004645041.jpg"]   # right arm horizontal, left arm lowered
    good = "The person is standing, their right arm raised towards the engine and their left arm down."
    assert judge(check_arms, good, truck) is None
    swapped = "The person is standing, their left arm raised towards the engine and their right arm down."
    assert "left arm lowered" in judge(check_arms, swapped, truck)
    wheelchair = mpii["005808361.jpg"]  # left arm lowered
    assert "left arm lowered" in judge(check_arms, "The person has their left hand raised.", wheelchair)
    assert judge(check_arms, "The person has their right hand raised to the ear.", wheelchair) is None
    both_down = mpii["060754485.jpg"]
    assert judge(check_arms, "Both arms hang at their sides.", both_down) is None
    assert judge(check_arms, "Both arms are raised.", both_down)


def test_person_count_real(mpii):
    one = mpii["060754485.jpg"]
    assert judge(check_people_count, "There is one person in the image.", one) is None
    assert "says 2" in judge(check_people_count, "There are two people in the image.", one)
    assert "says 0" in judge(check_people_count, "There is nobody in the image.", one)


# LLM-style prose about the real samples, written from looking at the photos: every check must keep
# it, and the same prose with one fact flipped must be rejected for that fact.
REAL_PROSE = {
    "005808361.jpg": ("There is one person in the image. The person is seated in a wheelchair on the ice, "
                      "with their left arm resting down on their lap and their right hand raised to their ear. "
                      "Their upper body is upright and their legs are together."),
    "004645041.jpg": ("There is one person in the image. The person is standing upright beside a truck; their "
                      "right arm is extended horizontally towards the engine while their left arm hangs by "
                      "their side."),
    "052475643.jpg": ("There is one person in the image, sitting on a chair on a stage. Both hands are raised "
                      "in front of their face as if they were signing, and their elbows are bent."),
    "060754485.jpg": ("There is one person in the image. The person is standing with both arms lowered and "
                      "their hands near the hips, looking towards the camera."),
}
FLIPPED = {
    "005808361.jpg": ("is seated", "is standing", "posture"),
    "004645041.jpg": ("left arm hangs by", "left arm is raised by", "arms"),
    "052475643.jpg": ("There is one person", "There are two people", "people_count"),
    "060754485.jpg": ("both arms lowered", "both arms raised above their heads", "arms"),
}


def test_real_prose_kept_and_flips_rejected(mpii, tmp_path):
    write_annotations(tmp_path / "ann.jsonl", mpii.values())
    rows = [{"image": img, "describer": "llm", "backend": "openai", "prompt_id": "pose-v1", "prompt_sha": "x",
             "description": text, "finish_reason": "stop"} for img, text in REAL_PROSE.items()]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = run_filter(tmp_path / "d.jsonl", tmp_path / "ann.jsonl", tmp_path / "k.jsonl")
    assert report.counts["kept"] == 4, (tmp_path / "k.rejected.jsonl").read_text()
    flipped = [{**r, "description": r["description"].replace(*FLIPPED[r["image"]][:2])} for r in rows]
    assert all(f["description"] != r["description"] for f, r in zip(flipped, rows))
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flipped))
    run_filter(tmp_path / "f.jsonl", tmp_path / "ann.jsonl", tmp_path / "fk.jsonl")
    got = {r["image"]: r["reason"] for r in map(json.loads, rejected_path_for(tmp_path / "fk.jsonl").open())}
    assert got == {img: why for img, (_, _, why) in FLIPPED.items()}
