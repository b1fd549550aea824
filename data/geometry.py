"""Pose facts in words, computed from one person's 2D keypoints (MPII joint order).

What the describers are told and what the filter checks against: every fact comes from labelled
joints only (`kpts_vis > 0`); a fact whose joints are unlabelled is `None` and nothing is said about it.
Distance thresholds are fractions of the person's size `H` in pixels — MPII `scale * 200` (the MPII
scale is defined as 6 head lengths / 200, close to the standing height), or, when a record has no
scale, an estimate from the head, torso and limb lengths — never raw pixels. Angles are in degrees.

Left and right: `left_*`/`right_*` are the PERSON's own left and right (MPII joint names: `l_wrist` is
the person's left wrist), not the viewer's. A person facing the camera has their right arm on the
viewer's left. Only `position` ("left"/"centre"/"right") and `order` are in the viewer's frame (image x).

Image y grows downwards; "raised", "above" and the like are in the image frame (a viewer's up). For a
person whose torso is horizontal or upside down (lying, handstand), arm, hand and leg orientations are
`None`: "raised" would be ambiguous there.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from focusclip.data.records import Annotation, Person
from focusclip.data.skeleton import JOINT_ID

# The words each fact can take (the filter and the prompts use these exact strings).
POSITIONS = ("left", "centre", "right")
DEPTHS = ("front", "middle", "back")
STATES = ("standing", "sitting", "kneeling", "lying")
TORSOS = ("upright", "leaning", "horizontal", "upside down")
BENDS = ("straight", "slightly bent", "bent at a right angle", "fully bent")
ARMS = ("raised above the head", "raised", "horizontal", "lowered")
LEG_ORIENTATIONS = ("vertical", "angled", "horizontal", "raised")
HANDS = ("above the head", "near the head", "at head height", "at shoulder height", "at chest height",
         "at hip height", "below the hips")
LEG_PAIRS = ("apart", "together", "crossed")

# Interior joint angle → word: the first lower bound the angle reaches (degrees).
BEND_BOUNDS = ((155.0, "straight"), (120.0, "slightly bent"), (65.0, "bent at a right angle"),
               (0.0, "fully bent"))

# Typical segment length as a fraction of H, measured on MPII (scale*200): the longest a segment gets
# when it lies in the image plane, so `length / ratio` underestimates H only under foreshortening.
SEGMENT_RATIOS = (
    (("upper_neck", "head_top"), 1 / 6),   # MPII's own definition of scale
    (("thorax", "pelvis"), 0.30),
    (("r_shoulder", "r_hip"), 0.32), (("l_shoulder", "l_hip"), 0.32),
    (("r_shoulder", "r_elbow"), 0.19), (("l_shoulder", "l_elbow"), 0.19),
    (("r_elbow", "r_wrist"), 0.19), (("l_elbow", "l_wrist"), 0.19),
    (("r_hip", "r_knee"), 0.27), (("l_hip", "l_knee"), 0.27),
    (("r_knee", "r_ankle"), 0.30), (("l_knee", "l_ankle"), 0.30),
)
MIN_SEGMENT = 0.04  # shorter segments (fraction of H) point at the camera: no angle from them

Point = tuple[float, float]


@dataclass(frozen=True)
class PoseFacts:
    """What can be said about one person. `None` = unknown (joints unlabelled or too ambiguous)."""
    index: int                    # position in `annotation.people` (record order)
    person_id: int
    labelled: int                 # number of labelled joints
    size_px: float | None         # H: the size all thresholds are relative to
    x: float | None               # horizontal centre in pixels (mean labelled joint, else MPII center)
    position: str | None          # viewer's frame: left / centre / right third of the image
    order: int | None             # 0-based rank from the viewer's left among people with a known x
    depth: str | None             # front / middle / back by size among the people (None: alone or alike)
    state: str | None
    torso: str | None
    left_elbow: str | None
    right_elbow: str | None
    left_knee: str | None
    right_knee: str | None
    left_arm: str | None
    right_arm: str | None
    left_leg: str | None
    right_leg: str | None
    left_hand: str | None
    right_hand: str | None
    legs: str | None

    def to_dict(self) -> dict:
        return asdict(self)


class _Pose:
    """Labelled joints of one person by name, with the person's size H."""

    def __init__(self, person: Person, size: float | None):
        self.pts: dict[str, Point] = {
            name: (float(person.kpts[i][0]), float(person.kpts[i][1]))
            for name, i in JOINT_ID.items() if person.kpts_vis[i] > 0}
        self.H = size

    def get(self, *names: str) -> Point | None:
        """The first labelled joint among `names`."""
        for n in names:
            if n in self.pts:
                return self.pts[n]
        return None

    def mid(self, a: str, b: str, fallback: str | None = None) -> Point | None:
        """Midpoint of a and b when both are labelled, else whichever is, else `fallback`."""
        pa, pb = self.pts.get(a), self.pts.get(b)
        if pa and pb:
            return ((pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2)
        return pa or pb or (self.pts.get(fallback) if fallback else None)

    def long_enough(self, a: Point, b: Point) -> bool:
        return math.dist(a, b) >= MIN_SEGMENT * self.H


def person_size(person: Person) -> float | None:
    """H in pixels: MPII `scale * 200`, else the largest segment-based estimate; None with < 2 joints."""
    if person.scale is not None and person.scale > 0:
        return float(person.scale) * 200.0
    vis, kpts = person.kpts_vis, person.kpts
    estimates = [math.dist(kpts[JOINT_ID[a]], kpts[JOINT_ID[b]]) / ratio
                 for (a, b), ratio in SEGMENT_RATIOS if vis[JOINT_ID[a]] > 0 and vis[JOINT_ID[b]] > 0]
    estimates = [e for e in estimates if e > 0]
    if estimates:
        return max(estimates)
    pts = [p for p, v in zip(kpts, vis) if v > 0]
    if len(pts) >= 2:  # no segment of the skeleton: the joints' spread as a last resort
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        span = math.hypot(max(xs) - min(xs), max(ys) - min(ys))
        return span if span > 0 else None
    return None


def person_x(person: Person) -> float | None:
    """Horizontal centre: mean of labelled joints, else the MPII rough centre (`center`)."""
    xs = [p[0] for p, v in zip(person.kpts, person.kpts_vis) if v > 0]
    if xs:
        return sum(xs) / len(xs)
    if person.center is not None:
        return float(person.center[0])
    return None


def elevation(a: Point, b: Point) -> float:
    """Angle of the vector a→b above the image horizontal, degrees in [-90, 90] (image y points down)."""
    return math.degrees(math.atan2(a[1] - b[1], abs(b[0] - a[0])))


def joint_angle(a: Point, b: Point, c: Point) -> float:
    """Interior angle at b between b→a and b→c, degrees in [0, 180]."""
    v1, v2 = (a[0] - b[0], a[1] - b[1]), (c[0] - b[0], c[1] - b[1])
    n = math.hypot(*v1) * math.hypot(*v2)
    cos = max(-1.0, min(1.0, (v1[0] * v2[0] + v1[1] * v2[1]) / n))
    return math.degrees(math.acos(cos))


def bend_word(angle: float) -> str:
    for bound, word in BEND_BOUNDS:
        if angle >= bound:
            return word
    return BEND_BOUNDS[-1][1]


def _bend(p: _Pose, a: str, b: str, c: str) -> str | None:
    pa, pb, pc = p.get(a), p.get(b), p.get(c)
    if not (pa and pb and pc) or not (p.long_enough(pa, pb) and p.long_enough(pb, pc)):
        return None
    return bend_word(joint_angle(pa, pb, pc))


def torso_word(p: _Pose) -> str | None:
    """Tilt of the hips→shoulders axis from the image vertical: ≤20° upright, ≤60° leaning,
    ≤135° horizontal, beyond that upside down."""
    low = p.mid("l_hip", "r_hip", "pelvis")
    high = p.mid("l_shoulder", "r_shoulder", "thorax") or p.get("upper_neck")
    if not (low and high) or not p.long_enough(low, high):
        return None
    tilt = 90.0 - elevation(low, high)  # 0 = shoulders straight above the hips, 180 = straight below
    if tilt <= 20:
        return "upright"
    if tilt <= 60:
        return "leaning"
    return "horizontal" if tilt <= 135 else "upside down"


def hand_word(p: _Pose, side: str) -> str | None:
    """Where a wrist is relative to the head, shoulders and hips (image heights, margins of 0.08 H)."""
    wrist = p.get(f"{side}_wrist")
    if not wrist:
        return None
    y, m = wrist[1], 0.08 * p.H
    top, neck = p.get("head_top"), p.get("upper_neck")
    if top and y < top[1] - 0.02 * p.H or (not top and neck and y < neck[1] - 0.25 * p.H):
        return "above the head"
    head = p.mid("upper_neck", "head_top")
    shoulder = p.mid("l_shoulder", "r_shoulder", "thorax")
    hip = p.mid("l_hip", "r_hip", "pelvis")
    # near the head: within ~0.8 head lengths of its centre and above the shoulder line (a hand held
    # in front of the chest seen from behind is close to the head in 2D but below the shoulders)
    if head and top and neck and math.dist(wrist, head) < 0.13 * p.H and (not shoulder or y < shoulder[1]):
        return "near the head"
    if neck and y < neck[1] and (not shoulder or y < shoulder[1] - m):
        return "at head height"
    if shoulder and abs(y - shoulder[1]) <= m:
        return "at shoulder height"
    if hip and abs(y - hip[1]) <= m:
        return "at hip height"
    if hip and y > hip[1] + m:
        return "below the hips"
    if shoulder and hip and shoulder[1] + m < y < hip[1] - m:
        return "at chest height"
    return None


def arm_word(p: _Pose, side: str, hand: str | None) -> str | None:
    """Direction shoulder→wrist (or →elbow): above the head, raised (>30° up), horizontal, lowered."""
    shoulder = p.get(f"{side}_shoulder")
    end = p.get(f"{side}_wrist", f"{side}_elbow")
    if not (shoulder and end):
        return None
    if hand == "above the head":
        return "raised above the head"
    if math.dist(shoulder, end) < 0.06 * p.H:
        return None
    e = elevation(shoulder, end)
    return "raised" if e > 30 else "horizontal" if e >= -30 else "lowered"


def leg_word(p: _Pose, side: str) -> str | None:
    """Direction hip→ankle (or →knee): vertical (≥65° down), angled, horizontal (±30°), raised."""
    hip = p.get(f"{side}_hip")
    end = p.get(f"{side}_ankle", f"{side}_knee")
    if not (hip and end) or math.dist(hip, end) < 0.06 * p.H:
        return None
    e = elevation(hip, end)
    if e <= -65:
        return "vertical"
    return "angled" if e < -30 else "horizontal" if e <= 30 else "raised"


def legs_word(p: _Pose) -> str | None:
    """Ankles (else knees) in the opposite left-right order to the hips: crossed; far apart (> 0.25 H):
    apart; close (< 0.10 H): together."""
    lh, rh = p.get("l_hip"), p.get("r_hip")
    for a, b in (("l_ankle", "r_ankle"), ("l_knee", "r_knee")):
        la, ra = p.get(a), p.get(b)
        if not (la and ra):
            continue
        hip_dx, end_dx = (lh[0] - rh[0]) if lh and rh else 0.0, la[0] - ra[0]
        if abs(hip_dx) > 0.04 * p.H and abs(end_dx) > 0.04 * p.H and hip_dx * end_dx < 0:
            return "crossed"
        d = math.dist(la, ra)
        return "apart" if d > 0.25 * p.H else "together" if d < 0.10 * p.H else None
    return None


def _ground(p: _Pose) -> float | None:
    """The lowest labelled knee or ankle (largest image y): where the body meets the floor."""
    ys = [p.pts[n][1] for n in ("l_knee", "r_knee", "l_ankle", "r_ankle") if n in p.pts]
    return max(ys) if ys else None


def _leg_vote(p: _Pose, side: str) -> str | None:
    """One leg's hint at the state: standing (thigh and shin pointing down), sitting (thigh within 45°
    of horizontal with the hips less than 0.45 H above the floor, or foreshortened towards the camera
    above a vertical shin), kneeling (thigh down, shin along the floor and the knee at floor level —
    a running back-kick has its knee in the air)."""
    hip, knee, ankle = p.get(f"{side}_hip"), p.get(f"{side}_knee"), p.get(f"{side}_ankle")
    if not (hip and knee):
        return None
    thigh_len, thigh = math.dist(hip, knee) / p.H, elevation(hip, knee)
    shin = elevation(knee, ankle) if ankle and p.long_enough(knee, ankle) else None
    if thigh_len < MIN_SEGMENT:
        return None
    ground = _ground(p)
    if thigh > -45:  # a thigh near horizontal: sitting if the hips are low, else a high knee (running)
        return "sitting" if ground - hip[1] < 0.45 * p.H else None
    on_floor = knee[1] >= ground - 0.12 * p.H
    if shin is not None and thigh <= -45 and abs(shin) < 35 and math.dist(knee, ankle) > 0.1 * p.H:
        return "kneeling" if on_floor else "unclear"  # a foot kicked up: no state fits
    if thigh_len < 0.14 and shin is not None and shin < -65:
        return "sitting"  # knee towards the camera: a short thigh over a vertical shin
    if thigh < -60 and (shin is None or shin < -60):
        return "standing"
    return None


def _legs_flat(p: _Pose) -> bool | None:
    """Whether every labelled leg (hip→ankle, else hip→knee) lies within 45° of horizontal."""
    flat = []
    for side in ("l", "r"):
        hip, end = p.get(f"{side}_hip"), p.get(f"{side}_ankle", f"{side}_knee")
        if hip and end and p.long_enough(hip, end):
            flat.append(abs(elevation(hip, end)) < 45)
    return all(flat) if flat else None


def state_word(p: _Pose, torso: str | None) -> str | None:
    """Horizontal torso: lying when the legs lie flat too (or are unlabelled), standing when they
    stand (bent over), else unknown. Upright or leaning torso: from the legs — any kneeling leg →
    kneeling; legs that agree (or one leg alone) → that; disagreement (a stride, a high knee) → None."""
    votes = {v for v in (_leg_vote(p, "l"), _leg_vote(p, "r")) if v}
    if torso == "horizontal":
        flat = _legs_flat(p)
        if flat or flat is None:
            return "lying"
        return "standing" if votes == {"standing"} else None
    if torso not in ("upright", "leaning"):
        return None
    if "kneeling" in votes:
        return "kneeling"
    state = votes.pop() if len(votes) == 1 else None
    return state if state in STATES else None


def position_word(x: float | None, image_width: float | None) -> str | None:
    """Viewer's frame: the left, centre or right third of the image."""
    if x is None or not image_width:
        return None
    f = x / image_width
    return "left" if f < 1 / 3 else "right" if f > 2 / 3 else "centre"


def depth_word(size: float | None, sizes: list[float]) -> str | None:
    """By size among the people on a log scale: largest third front, smallest third back. None when
    alone or when all sizes are within 25% of each other (nobody is clearly in front)."""
    if size is None or len(sizes) < 2:
        return None
    lo, hi = min(sizes), max(sizes)
    if hi < 1.25 * lo:
        return None
    t = (math.log(size) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return "front" if t >= 2 / 3 else "back" if t <= 1 / 3 else "middle"


def person_facts(person: Person, image_width: float | None, image_height: float | None,
                 people: list[Person] | None = None, index: int = 0) -> PoseFacts:
    """All facts about `person`. `people` (the image's people, `person` among them) sets depth and order;
    without it the person is treated as alone. `image_height` is accepted for symmetry; heights are
    judged against the body, not the frame."""
    people = people if people is not None else [person]
    size, x = person_size(person), person_x(person)
    others_x = sorted(v for v in (person_x(q) for q in people) if v is not None)
    sizes = [s for s in (person_size(q) for q in people) if s]
    base = dict(index=index, person_id=person.id, labelled=person.num_labelled, size_px=size, x=x,
                position=position_word(x, image_width), order=others_x.index(x) if x is not None else None,
                depth=depth_word(size, sizes))
    if not size or person.num_labelled == 0:
        return PoseFacts(**base, **{k: None for k in _BODY_FIELDS})
    return PoseFacts(**base, **_body_facts(_Pose(person, size)))


_BODY_FIELDS = ("state", "torso", "left_elbow", "right_elbow", "left_knee", "right_knee", "left_arm",
                "right_arm", "left_leg", "right_leg", "left_hand", "right_hand", "legs")


def _body_facts(p: _Pose) -> dict:
    torso = torso_word(p)
    facts = dict(state=state_word(p, torso), torso=torso, legs=legs_word(p),
                 left_elbow=_bend(p, "l_shoulder", "l_elbow", "l_wrist"),
                 right_elbow=_bend(p, "r_shoulder", "r_elbow", "r_wrist"),
                 left_knee=_bend(p, "l_hip", "l_knee", "l_ankle"),
                 right_knee=_bend(p, "r_hip", "r_knee", "r_ankle"))
    level = torso not in ("horizontal", "upside down")  # "up" is ambiguous for a lying body
    for side, name in (("l", "left"), ("r", "right")):
        hand = hand_word(p, side) if level else None
        facts[f"{name}_hand"] = hand
        facts[f"{name}_arm"] = arm_word(p, side, hand) if level else None
        facts[f"{name}_leg"] = leg_word(p, side) if level else None
    return facts


def image_facts(annotation: Annotation) -> list[PoseFacts]:
    """One PoseFacts per person, in record order, INCLUDING people with no labelled joints (their body
    facts are all None; position/depth may still come from the MPII center/scale). So
    `len(image_facts(a)) == people_count(a) == len(a.people)`: the count the prompts state."""
    return [person_facts(q, annotation.width, annotation.height, annotation.people, i)
            for i, q in enumerate(annotation.people)]


def people_count(annotation: Annotation) -> int:
    """The number of people a description must state ("There is one person" / "There are N people")."""
    return len(annotation.people)
