"""Poses for the synthetic world: MPII 16-joint skeletons with human proportions, by activity family.

A pose is built by forward kinematics in the image plane from segment lengths (fractions of the
person's standing height) and absolute segment angles. Angles are degrees with 0 pointing straight
down the image, 90 to the image right and 180 straight up, so `_dir(180)` is "up".
Side views face the image right; the scene mirrors a pose at random to face the other way (or, for a
front view, to turn it into a back view), so families are written once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from focusclip.data.skeleton import JOINT_ID, NUM_JOINTS

J = JOINT_ID

# Segment lengths as fractions of standing height. Adult values follow the usual 7.5-heads canon;
# a child (about 6 years) has a larger head, shorter legs and narrower shoulders.
ADULT = {"torso": 0.29, "neck": 0.05, "head": 0.13, "thigh": 0.245, "shin": 0.245,
         "upper_arm": 0.18, "forearm": 0.155, "shoulder": 0.115, "hip": 0.07}
CHILD = {"torso": 0.28, "neck": 0.04, "head": 0.18, "thigh": 0.21, "shin": 0.20,
         "upper_arm": 0.155, "forearm": 0.13, "shoulder": 0.095, "hip": 0.06}


@dataclass(frozen=True)
class Activity:
    """An MPII-style activity (act_id, cat_name, act_name) drawn by one pose family."""
    act_id: int
    category: str
    name: str
    family: str
    stanford40: str | None = None   # the Stanford 40 class this family stands for in the eval set


# The families the generator draws. Names of the families that stand for a Stanford 40 class use that
# class's words so that zero-shot prompts built from the class names meet words seen in training.
ACTIVITIES: tuple[Activity, ...] = (
    Activity(1001, "inactivity quiet/light", "standing", "standing"),
    Activity(1002, "walking", "walking", "walking"),
    Activity(1003, "running", "running", "running", "running"),
    Activity(1004, "inactivity quiet/light", "sitting", "sitting"),
    Activity(1005, "home activities", "kneeling", "kneeling"),
    Activity(1006, "inactivity quiet/light", "lying", "lying"),
    Activity(1007, "sports", "jumping", "jumping", "jumping"),
    Activity(1008, "miscellaneous", "waving hands", "waving", "waving_hands"),
    Activity(1009, "miscellaneous", "applauding", "applauding", "applauding"),
    Activity(1010, "miscellaneous", "phoning", "phoning", "phoning"),
    Activity(1011, "home activities", "cleaning the floor", "bending", "cleaning_the_floor"),
    Activity(1012, "sports", "climbing", "climbing", "climbing"),
    Activity(1013, "conditioning exercise", "raising arms", "arms_raised"),
)
ACTIVITY_BY_FAMILY = {a.family: a for a in ACTIVITIES}


@dataclass(frozen=True)
class PoseSpec:
    """Absolute segment angles (degrees) and the view of one pose, before proportions are applied."""
    torso: float = 180.0
    head: float = 0.0          # head tilt relative to the torso
    r_upper_arm: float = -10.0
    r_forearm: float = -5.0
    l_upper_arm: float = 10.0
    l_forearm: float = 5.0
    r_thigh: float = -4.0
    r_shin: float = -2.0
    l_thigh: float = 4.0
    l_shin: float = 2.0
    side: bool = False         # side view (shoulders and hips nearly overlap)
    lift: float = 0.0          # feet above the ground, fraction of height (jumping)


def _dir(theta: float) -> np.ndarray:
    t = np.deg2rad(theta)
    return np.array([np.sin(t), np.cos(t)])


def _j(rng: np.random.Generator, sd: float = 8.0) -> float:
    """Random angle jitter so no two poses of a family are alike."""
    return float(rng.normal(0.0, sd))


def _standing(rng) -> PoseSpec:
    return PoseSpec(torso=180 + _j(rng, 3), head=_j(rng, 6), r_upper_arm=-12 + _j(rng),
                    r_forearm=-8 + _j(rng), l_upper_arm=12 + _j(rng), l_forearm=8 + _j(rng),
                    r_thigh=-5 + _j(rng, 3), r_shin=-3 + _j(rng, 3), l_thigh=5 + _j(rng, 3),
                    l_shin=3 + _j(rng, 3))


def _walking(rng) -> PoseSpec:
    a = 22 + _j(rng, 5)   # stride angle
    return PoseSpec(torso=182 + _j(rng, 3), head=_j(rng, 5), side=True,
                    r_thigh=a, r_shin=a - 12 + _j(rng, 4), l_thigh=-a + 4, l_shin=-a - 10 + _j(rng, 4),
                    r_upper_arm=-a + _j(rng, 5), r_forearm=-a + 20 + _j(rng, 5),
                    l_upper_arm=a + _j(rng, 5), l_forearm=a + 25 + _j(rng, 5))


def _running(rng) -> PoseSpec:
    a = 45 + _j(rng, 8)
    return PoseSpec(torso=195 + _j(rng, 4), head=-10 + _j(rng, 5), side=True, lift=0.03,
                    r_thigh=a, r_shin=-15 + _j(rng, 8), l_thigh=-35 + _j(rng, 6), l_shin=-95 + _j(rng, 10),
                    r_upper_arm=-45 + _j(rng, 8), r_forearm=45 + _j(rng, 10),
                    l_upper_arm=40 + _j(rng, 8), l_forearm=130 + _j(rng, 10))


def _sitting(rng) -> PoseSpec:
    return PoseSpec(torso=178 + _j(rng, 4), head=_j(rng, 5), side=True,
                    r_thigh=88 + _j(rng, 5), r_shin=_j(rng, 6), l_thigh=85 + _j(rng, 5), l_shin=5 + _j(rng, 6),
                    r_upper_arm=25 + _j(rng, 8), r_forearm=80 + _j(rng, 10),
                    l_upper_arm=15 + _j(rng, 8), l_forearm=75 + _j(rng, 10))


def _kneeling(rng) -> PoseSpec:
    return PoseSpec(torso=178 + _j(rng, 4), head=_j(rng, 5), side=True,
                    r_thigh=8 + _j(rng, 5), r_shin=-88 + _j(rng, 4), l_thigh=80 + _j(rng, 6), l_shin=_j(rng, 4),
                    r_upper_arm=10 + _j(rng, 8), r_forearm=20 + _j(rng, 10),
                    l_upper_arm=5 + _j(rng, 8), l_forearm=30 + _j(rng, 10))


def _lying(rng) -> PoseSpec:
    return PoseSpec(torso=-90 + _j(rng, 4), head=_j(rng, 6), side=True,
                    r_thigh=90 + _j(rng, 4), r_shin=90 + _j(rng, 5), l_thigh=93 + _j(rng, 4),
                    l_shin=95 + _j(rng, 5), r_upper_arm=80 + _j(rng, 10), r_forearm=85 + _j(rng, 10),
                    l_upper_arm=-95 + _j(rng, 15), l_forearm=-90 + _j(rng, 15))


def _jumping(rng) -> PoseSpec:
    return PoseSpec(torso=180 + _j(rng, 4), head=_j(rng, 5), lift=0.18 + rng.uniform(0, 0.1),
                    r_thigh=-30 + _j(rng, 6), r_shin=25 + _j(rng, 8), l_thigh=30 + _j(rng, 6),
                    l_shin=-25 + _j(rng, 8), r_upper_arm=-150 + _j(rng, 10), r_forearm=-165 + _j(rng, 10),
                    l_upper_arm=150 + _j(rng, 10), l_forearm=165 + _j(rng, 10))


def _waving(rng) -> PoseSpec:
    base = _standing(rng)
    return PoseSpec(**{**base.__dict__, "r_upper_arm": -100 + _j(rng, 12),
                       "r_forearm": -175 + _j(rng, 15)})


def _applauding(rng) -> PoseSpec:
    base = _standing(rng)
    return PoseSpec(**{**base.__dict__, "r_upper_arm": -20 + _j(rng, 5), "r_forearm": 115 + _j(rng, 8),
                       "l_upper_arm": 20 + _j(rng, 5), "l_forearm": -115 + _j(rng, 8)})


def _phoning(rng) -> PoseSpec:
    base = _standing(rng)
    return PoseSpec(**{**base.__dict__, "r_upper_arm": -25 + _j(rng, 5), "r_forearm": 160 + _j(rng, 8)})


def _bending(rng) -> PoseSpec:
    return PoseSpec(torso=100 + _j(rng, 8), head=30 + _j(rng, 8), side=True,
                    r_thigh=-8 + _j(rng, 4), r_shin=-3 + _j(rng, 4), l_thigh=-2 + _j(rng, 4),
                    l_shin=_j(rng, 4), r_upper_arm=15 + _j(rng, 8), r_forearm=25 + _j(rng, 8),
                    l_upper_arm=5 + _j(rng, 8), l_forearm=15 + _j(rng, 8))


def _climbing(rng) -> PoseSpec:
    return PoseSpec(torso=182 + _j(rng, 4), head=_j(rng, 6), lift=0.12,
                    r_thigh=-70 + _j(rng, 8), r_shin=5 + _j(rng, 8), l_thigh=5 + _j(rng, 4),
                    l_shin=_j(rng, 4), r_upper_arm=-160 + _j(rng, 8), r_forearm=-175 + _j(rng, 8),
                    l_upper_arm=140 + _j(rng, 10), l_forearm=170 + _j(rng, 10))


def _arms_raised(rng) -> PoseSpec:
    base = _standing(rng)
    return PoseSpec(**{**base.__dict__, "r_upper_arm": -160 + _j(rng, 8), "r_forearm": -172 + _j(rng, 6),
                       "l_upper_arm": 160 + _j(rng, 8), "l_forearm": 172 + _j(rng, 6)})


FAMILIES: dict[str, Callable[[np.random.Generator], PoseSpec]] = {
    "standing": _standing, "walking": _walking, "running": _running, "sitting": _sitting,
    "kneeling": _kneeling, "lying": _lying, "jumping": _jumping, "waving": _waving,
    "applauding": _applauding, "phoning": _phoning, "bending": _bending, "climbing": _climbing,
    "arms_raised": _arms_raised,
}
assert set(FAMILIES) == set(ACTIVITY_BY_FAMILY), "every family needs an activity"


def proportions(child: bool, rng: np.random.Generator) -> dict[str, float]:
    """Segment lengths of one person: the canon with ±5% individual variation."""
    base = CHILD if child else ADULT
    return {k: v * float(rng.normal(1.0, 0.04)) for k, v in base.items()}


def skeleton(spec: PoseSpec, props: dict[str, float]) -> np.ndarray:
    """Joint positions (16, 2) in units of standing height, pelvis at the origin, y down."""
    k = np.zeros((NUM_JOINTS, 2))
    up = _dir(spec.torso)
    across = np.array([-np.cos(np.deg2rad(spec.torso)), np.sin(np.deg2rad(spec.torso))])  # image right
    width = 0.25 if spec.side else 1.0
    k[J["thorax"]] = props["torso"] * up
    k[J["upper_neck"]] = k[J["thorax"]] + props["neck"] * _dir(spec.torso + spec.head)
    k[J["head_top"]] = k[J["upper_neck"]] + props["head"] * _dir(spec.torso + spec.head)
    # A person facing the camera has the right side on the image left.
    for side, sign in (("r", -1.0), ("l", 1.0)):
        shoulder = k[J["thorax"]] + sign * width * props["shoulder"] * across
        hip = sign * width * props["hip"] * across
        elbow = shoulder + props["upper_arm"] * _dir(getattr(spec, f"{side}_upper_arm"))
        knee = hip + props["thigh"] * _dir(getattr(spec, f"{side}_thigh"))
        k[J[f"{side}_shoulder"]], k[J[f"{side}_hip"]] = shoulder, hip
        k[J[f"{side}_elbow"]], k[J[f"{side}_knee"]] = elbow, knee
        k[J[f"{side}_wrist"]] = elbow + props["forearm"] * _dir(getattr(spec, f"{side}_forearm"))
        k[J[f"{side}_ankle"]] = knee + props["shin"] * _dir(getattr(spec, f"{side}_shin"))
    return k


def sample_pose(family: str, child: bool, rng: np.random.Generator) -> tuple[np.ndarray, PoseSpec]:
    """A random pose of `family`: joints (16, 2) in height units with the lowest point at y=-lift,
    horizontally centred on the pelvis, and the spec it came from."""
    spec = FAMILIES[family](rng)
    k = skeleton(spec, proportions(child, rng))
    k[:, 1] -= k[:, 1].max() + spec.lift    # stand the person on y = 0 (minus any jump)
    return k, spec
