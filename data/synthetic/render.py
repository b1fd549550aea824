"""Rendering for the synthetic world: cluttered backgrounds, people as filled limbs, visibility.

Every drawing goes to the image and, with a rising layer number, to an int32 layer map of the same
size. A joint remembers the last layer of its own body that touched it; when the layer map at the
joint holds a later number after the scene is done, something was drawn over it and the joint is
occluded (MPII `is_visible = 0`, our `kpts_vis = 1`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from focusclip.data.skeleton import JOINT_ID, NUM_JOINTS
from focusclip.data.synthetic.pose import sample_pose

J = JOINT_ID
SKIN = ((224, 189, 160), (198, 150, 110), (160, 110, 75), (110, 75, 50), (240, 210, 185), (85, 55, 40))


@dataclass
class Canvas:
    """An image (H, W, 3) uint8 BGR and its layer map (H, W) int32."""
    image: np.ndarray
    layers: np.ndarray
    next_layer: int = 1

    @classmethod
    def blank(cls, width: int, height: int) -> "Canvas":
        return cls(np.zeros((height, width, 3), np.uint8), np.zeros((height, width), np.int32))

    def layer(self) -> int:
        self.next_layer += 1
        return self.next_layer - 1


@dataclass
class DrawnPerson:
    """One person as drawn: joints in pixels (16, 2), their layers, box and MPII-style metadata."""
    kpts: np.ndarray
    joint_layer: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.int64))
    height_px: float = 0.0
    child: bool = False
    family: str = ""
    head_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def bbox(self) -> tuple[float, float, float, float]:
        x0, y0 = self.kpts.min(0)
        x1, y1 = self.kpts.max(0)
        hb = self.head_box
        pad = 0.06 * self.height_px
        return (min(x0, hb[0]) - pad, min(y0, hb[1]) - pad, max(x1, hb[2]) + pad, max(y1, hb[3]) + pad)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _colour(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, v * f)) for v in c)


def _muted(rng: np.random.Generator, lo: int = 70, hi: int = 200, tint: int = 22) -> tuple[int, int, int]:
    """A low-saturation colour (walls, floors, furniture), so people in clothes stand out."""
    g = int(rng.integers(lo, hi))
    return tuple(int(np.clip(g + t, 0, 255)) for t in rng.integers(-tint, tint + 1, 3))


def background(width: int, height: int, rng: np.random.Generator, clutter: float = 1.0) -> np.ndarray:
    """A textured scene: wall/floor in muted colours, low-frequency shading, pixel noise, and
    furniture boxes and lines (more of them with more clutter)."""
    horizon = int(height * rng.uniform(0.45, 0.75))
    img = np.empty((height, width, 3), np.float32)
    img[:horizon] = np.array(_muted(rng), np.float32)
    img[horizon:] = np.array(_muted(rng, 50, 180), np.float32)
    shade = rng.normal(0, 1, (6, 8, 1)).astype(np.float32) + 0.3 * rng.normal(0, 1, (6, 8, 3)).astype(np.float32)
    img += 18 * cv2.resize(shade, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.poisson(3 * clutter))):   # windows, shelves, tables
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 12, width // 3)), int(rng.integers(height // 12, height // 3))
        cv2.rectangle(out, (x, y), (x + w, y + h), _muted(rng, 30, 230, 40), -1 if rng.random() < 0.6 else 2)
    for _ in range(int(rng.poisson(5 * clutter))):
        cv2.line(out, (int(rng.integers(0, width)), int(rng.integers(0, height))),
                 (int(rng.integers(0, width)), int(rng.integers(0, height))), _muted(rng, 30, 230, 40),
                 int(rng.integers(1, 4)), cv2.LINE_AA)
    return out


def distractors(img: np.ndarray, rng: np.random.Generator, clutter: float, person_px: float) -> None:
    """Person-like strokes that are not people: loose limb capsules, headless mannequins and thin
    stick-figure drawings (posters). They make the background compete with the people for attention."""
    h, w = img.shape[:2]
    for _ in range(int(rng.poisson(4 * clutter))):
        p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        length = person_px * rng.uniform(0.12, 0.3)
        p1 = p0 + length * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        colour = SKIN[int(rng.integers(len(SKIN)))] if rng.random() < 0.5 else _colour(rng)
        cv2.line(img, _pt(p0), _pt(p1), colour, max(2, int(person_px * 0.06)), cv2.LINE_AA)
    for _ in range(int(rng.poisson(0.8 * clutter))):
        c = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        s = person_px * rng.uniform(0.3, 0.6)
        quad = c + s * np.array([[-0.18, -0.3], [0.18, -0.3], [0.12, 0.3], [-0.12, 0.3]])
        cv2.fillConvexPoly(img, quad.astype(np.int32), _colour(rng), cv2.LINE_AA)
    for _ in range(int(rng.poisson(0.6 * clutter))):
        family = str(rng.choice(["standing", "walking", "running", "waving", "jumping"]))
        k, _ = sample_pose(family, False, rng)
        size = person_px * rng.uniform(0.3, 0.7)
        k = k * size + np.array([rng.uniform(0, w), rng.uniform(size, h)])
        colour = _colour(rng)
        for a, b in ((0, 1), (1, 2), (2, 7), (5, 4), (4, 3), (3, 7), (7, 9), (10, 11), (11, 7), (15, 14), (14, 7)):
            cv2.line(img, _pt(k[a]), _pt(k[b]), colour, max(1, int(size * 0.02)), cv2.LINE_AA)


def _limb(cv: Canvas, person: DrawnPerson, a: int, b: int, colour, thickness: int) -> None:
    layer = cv.layer()
    p, q = _pt(person.kpts[a]), _pt(person.kpts[b])
    cv2.line(cv.image, p, q, colour, thickness, cv2.LINE_AA)
    cv2.line(cv.layers, p, q, layer, thickness)
    person.joint_layer[[a, b]] = layer


def _torso(cv: Canvas, person: DrawnPerson, colour) -> None:
    k = person.kpts
    layer = cv.layer()
    width = 0.05 * person.height_px
    quad = np.array([k[J["r_shoulder"]], k[J["l_shoulder"]], k[J["l_hip"]], k[J["r_hip"]]])
    hull = cv2.convexHull(quad.astype(np.float32)).astype(np.int32)
    for target, value in ((cv.image, colour), (cv.layers, layer)):
        cv2.fillConvexPoly(target, hull, value)
        cv2.line(target, _pt((k[12] + k[13]) / 2), _pt((k[2] + k[3]) / 2), value, max(2, int(2.6 * width)))
    person.joint_layer[[J["pelvis"], J["thorax"], 2, 3, 12, 13]] = layer


def _head(cv: Canvas, person: DrawnPerson, skin, hair) -> None:
    k = person.kpts
    neck, top = k[J["upper_neck"]], k[J["head_top"]]
    length = float(np.linalg.norm(top - neck)) + 1e-6
    centre = (neck + top) / 2
    angle = float(np.degrees(np.arctan2(top[1] - neck[1], top[0] - neck[0])))
    axes = (length * 1.0, length * 0.78)   # full ellipse axes: along the neck-top line, across
    layer = cv.layer()
    box = ((float(centre[0]), float(centre[1])), axes, angle)
    cv2.ellipse(cv.image, box, skin, -1, cv2.LINE_AA)
    cv2.ellipse(cv.layers, box, layer, -1)
    hair_box = ((float(centre[0] + (top[0] - neck[0]) * 0.22), float(centre[1] + (top[1] - neck[1]) * 0.22)),
                (axes[0] * 0.6, axes[1] * 1.0), angle)
    cv2.ellipse(cv.image, hair_box, hair, -1, cv2.LINE_AA)
    person.joint_layer[[J["upper_neck"], J["head_top"]]] = layer
    r = 0.5 * max(axes)
    person.head_box = (float(centre[0] - r), float(centre[1] - r), float(centre[0] + r), float(centre[1] + r))


def draw_person(cv: Canvas, person: DrawnPerson, side_view: bool, facing_right: bool,
                rng: np.random.Generator) -> None:
    """Filled limbs with clothing colours: trousers on the legs, a shirt on torso and upper arms,
    skin on forearms and head. In side views the far limbs go first, darker; the near ones last."""
    skin = SKIN[int(rng.integers(len(SKIN)))]
    shirt, trousers, hair = _colour(rng), _colour(rng), _colour(rng, 10, 90)
    h = person.height_px
    # Chunky limbs, so a pose still reads at the 64 px of the tiny training configs.
    leg_t, arm_t, fore_t = max(2, int(0.1 * h)), max(2, int(0.08 * h)), max(2, int(0.065 * h))
    sleeve_skin = shirt if rng.random() < 0.4 else skin

    def leg(s, f=1.0):
        hip, knee, ankle = (J[f"{s}_hip"], J[f"{s}_knee"], J[f"{s}_ankle"])
        _limb(cv, person, hip, knee, _shade(trousers, f), leg_t)
        _limb(cv, person, knee, ankle, _shade(trousers, f), leg_t)

    def arm(s, f=1.0):
        sh, el, wr = (J[f"{s}_shoulder"], J[f"{s}_elbow"], J[f"{s}_wrist"])
        _limb(cv, person, sh, el, _shade(shirt, f), arm_t)
        _limb(cv, person, el, wr, _shade(sleeve_skin, f), fore_t)

    # A side view facing right shows the person's right side to the camera (see pose.py).
    near, far = ("r", "l") if facing_right else ("l", "r")
    if side_view:
        arm(far, 0.7)
        leg(far, 0.75)
    else:
        leg("r")
        leg("l")
    _torso(cv, person, shirt)
    _head(cv, person, skin, hair)
    if side_view:
        leg(near)
        arm(near)
    else:
        arm("r")
        arm("l")


def place_person(family: str, child: bool, height_px: float, foot: tuple[float, float],
                 mirror: bool, rng: np.random.Generator) -> tuple[DrawnPerson, bool]:
    """Pose a person of `family` and put them in the image with the feet (lowest point) at `foot`."""
    k, spec = sample_pose(family, child, rng)
    if mirror:
        k[:, 0] = -k[:, 0]
    k = k * height_px + np.array(foot)
    return DrawnPerson(kpts=k, height_px=height_px, child=child, family=family), spec.side


def occluder(cv: Canvas, rng: np.random.Generator, near: DrawnPerson) -> None:
    """A foreground object (table edge, post, box) over part of a person."""
    x0, y0, x1, y1 = near.bbox()
    layer = cv.layer()
    colour = _colour(rng)
    if rng.random() < 0.5:   # a table or box covering the lower body
        top = y0 + (y1 - y0) * rng.uniform(0.55, 0.8)
        p, q = (int(x0 - 10), int(top)), (int(x0 + (x1 - x0) * rng.uniform(0.5, 1.2)), int(y1 + 10))
    else:                    # a post in front of the person
        cx = rng.uniform(x0, x1)
        wpx = max(3.0, 0.08 * near.height_px)
        p, q = (int(cx - wpx), 0), (int(cx + wpx), cv.image.shape[0])
    cv2.rectangle(cv.image, p, q, colour, -1)
    cv2.rectangle(cv.layers, p, q, layer, -1)


def visibility(cv: Canvas, person: DrawnPerson, unlabelled_prob: float,
               rng: np.random.Generator) -> list[int]:
    """COCO-style visibility per joint: 0 outside the image or randomly left unlabelled, 1 covered by
    a later drawing, 2 visible."""
    h, w = cv.layers.shape
    vis = []
    for j in range(NUM_JOINTS):
        x, y = person.kpts[j]
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1) or rng.random() < unlabelled_prob:
            vis.append(0)
            continue
        covered = cv.layers[int(round(y)), int(round(x))] > person.joint_layer[j]
        vis.append(1 if covered else 2)
    return vis
