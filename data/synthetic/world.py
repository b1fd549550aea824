"""The synthetic world: images of posed people in clutter, written in the real MPII layout.

`generate_mpii(out, n, seed)` writes `out/images/*.jpg`, the release-layout
`out/mpii_human_pose_v1_u12_1.mat` (through `mat_writer`) and `out/truth.jsonl`, the
generator's own 0-based records, which `focus-data convert mpii` must give back exactly.
Every image is drawn from its own random stream `(seed, stream, index)`, so the world is the same
for a seed whatever the count, and any image can be redrawn alone. Eval sets: `evalsets`.

Bystanders (`WorldConfig.bystanders` = K, `focus-data synth --bystanders K`): beside the annotated
people of an image (its subjects, who all do the image's activity) K more people doing other
activities, each with its props, in slots among the subjects' chosen at random (so a bystander is
sometimes the more central one) and drawn at 0.55–1.0 of a subject's height range (sometimes the
larger one). They are in the pixels only: never in the record, so neither in the heatmaps nor in
the descriptions drawn from it, as MPII frames hold people nobody annotated. With K = 0 not one
random draw changes, so the images are today's, byte for byte.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from focusclip.core.io import atomic_write_bytes, write_jsonl
from focusclip.data.synthetic.mat_writer import write_mpii_mat
from focusclip.data.records import Annotation, Person
from focusclip.data.skeleton import NUM_JOINTS
from focusclip.data.synthetic.pose import ACTIVITIES, ACTIVITY_BY_FAMILY
from focusclip.data.synthetic.render import (Canvas, DrawnPerson, background, distractors, draw_person, occluder,
                                   place_person, visibility)

MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
STREAM_TRAIN = 1
VIDEO_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


@dataclass(frozen=True)
class WorldConfig:
    """How the world looks. `clutter` scales the number of person-like distractors."""
    width: int = 256     # square-ish, so a training centre crop keeps every person
    height: int = 224
    max_people: int = 3
    clutter: float = 1.0
    child_prob: float = 0.2
    occluder_prob: float = 0.3
    unlabelled_prob: float = 0.02
    test_fraction: float = 0.05
    jpeg_quality: int = 90
    bystanders: int = 0  # unannotated people beside the subjects, each doing another activity


BYSTANDER_SCALE = (0.55, 1.0)   # a bystander's height, times a subject's draw: sometimes the larger one


@dataclass
class Scene:
    """One rendered image and the people in it (`vis` per person, COCO 0/1/2); `bystanders` are
    drawn too but are nobody's record."""
    image: np.ndarray
    people: list[DrawnPerson]
    vis: list[list[int]]
    props: list[str]
    bystanders: list[DrawnPerson] = field(default_factory=list)


def image_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def image_name(seed: int, index: int) -> str:
    """A 9-digit MPII-style name, unique per index (7919 is prime and coprime with 10^9)."""
    return f"{(index * 7919 + seed * 104729 + 1) % 10**9:09d}.jpg"


def render_scene(families: list[str], cfg: WorldConfig, rng: np.random.Generator,
                 size: tuple[int, int] | None = None, child: list[bool] | None = None,
                 fill: tuple[float, float] | None = None, bystanders: list[str] = ()) -> Scene:
    """Draw `len(families)` people (the subjects) and one bystander of each family in `bystanders`,
    left to right in slots of equal width, on a cluttered background; the bystanders' slots are
    chosen at random, the subjects keep their order in the others.

    `fill` is the range of person height as a fraction of the image height (a bystander's is scaled
    by BYSTANDER_SCALE); `child` forces the subjects' ages."""
    w, h = size or (cfg.width, cfg.height)
    n, k = len(families), len(bystanders)
    fill = fill or ((0.65, 0.92) if n + k == 1 else (0.45, 0.7))
    cv = Canvas(background(w, h, rng, cfg.clutter), np.zeros((h, w), np.int32))
    distractors(cv.image, rng, cfg.clutter, fill[1] * h)
    slots = np.linspace(0, w, n + k + 1)
    by_slot = set(rng.choice(n + k, size=k, replace=False).tolist()) if k else set()   # no draw when k = 0
    people, others, props = [], [], []
    for s in range(n + k):
        bystander = s in by_slot
        i = len(others) if bystander else len(people)
        family = bystanders[i] if bystander else families[i]
        is_child = child[i] if child is not None and not bystander else bool(rng.random() < cfg.child_prob)
        height_px = h * rng.uniform(*fill) * (0.68 if is_child else 1.0)
        if bystander:
            height_px *= rng.uniform(*BYSTANDER_SCALE)
        foot = (rng.uniform(slots[s] + 0.35 * (slots[s + 1] - slots[s]), slots[s + 1] - 0.35 * (slots[s + 1] - slots[s])),
                h * rng.uniform(0.86, 0.98))
        if family == "lying":   # a lying person spans the width, not the height
            height_px = min(height_px, 0.9 * (slots[s + 1] - slots[s]))
        mirror = bool(rng.random() < 0.5)
        person, side = place_person(family, is_child, height_px, foot, mirror, rng)
        props.extend(_prop_behind(cv, person, rng))
        draw_person(cv, person, side, not mirror, rng)
        props.extend(_prop_in_front(cv, person, rng))
        (others if bystander else people).append(person)
    if people and rng.random() < cfg.occluder_prob:
        occluder(cv, rng, people[int(rng.integers(len(people)))])
    vis = [visibility(cv, p, cfg.unlabelled_prob, rng) for p in people]
    return Scene(cv.image, people, vis, props, others)


def bystander_families(family: str, k: int, rng: np.random.Generator) -> list[str]:
    """K activity families other than the subjects' `family`, at random (no draw when k = 0)."""
    other = [a.family for a in ACTIVITIES if a.family != family]
    return [other[int(j)] for j in rng.integers(len(other), size=k)] if k else []


def _prop_behind(cv: Canvas, person: DrawnPerson, rng) -> list[str]:
    """Objects that tell an activity apart, drawn behind the person: a ladder, a mop."""
    k, hp = person.kpts, person.height_px
    if person.family == "climbing":
        x0, x1 = k[:, 0].min() - 0.05 * hp, k[:, 0].max() + 0.05 * hp
        top, bottom = int(k[:, 1].min() - 0.15 * hp), cv.image.shape[0]
        colour = (40, 90, 140)
        for x in (x0, x1):
            cv2.line(cv.image, (int(x), top), (int(x), bottom), colour, max(2, int(0.03 * hp)))
        for y in np.arange(top, bottom, max(6, int(0.12 * hp))):
            cv2.line(cv.image, (int(x0), int(y)), (int(x1), int(y)), colour, max(2, int(0.02 * hp)))
        return ["ladder"]
    if person.family == "bending":
        wrist = k[10]
        end = (int(wrist[0] + rng.uniform(-0.2, 0.2) * hp), int(k[:, 1].max()))
        cv2.line(cv.image, (int(wrist[0]), int(wrist[1] - 0.1 * hp)), end, (30, 120, 170), max(2, int(0.02 * hp)))
        cv2.ellipse(cv.image, (end, (int(0.12 * hp), int(0.03 * hp) + 1), 0), (200, 200, 200), -1)
        return ["mop"]
    if person.family == "sitting":   # a stool under the hips, down to the feet's level
        hips, knees = k[[2, 3]].mean(0), k[[1, 4]].mean(0)
        x0, x1 = sorted((hips[0] - (knees[0] - hips[0]) * 0.3, knees[0]))
        y0, y1 = int(hips[1] + 0.03 * hp), int(k[:, 1].max())
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        cv2.rectangle(cv.image, (int(x0), y0), (int(x1), y0 + max(2, int(0.04 * hp))), colour, -1)
        for x in (x0, x1):
            cv2.line(cv.image, (int(x), y0), (int(x), y1), colour, max(2, int(0.025 * hp)))
        return ["stool"]
    return []


def _prop_in_front(cv: Canvas, person: DrawnPerson, rng) -> list[str]:
    """A phone in the hand at the ear (small, so the wrist stays mostly visible)."""
    if person.family != "phoning":
        return []
    wrist, hp = person.kpts[10], person.height_px
    c = (int(wrist[0]), int(wrist[1] - 0.04 * hp))
    cv2.rectangle(cv.image, (c[0] - max(1, int(0.015 * hp)), c[1] - max(2, int(0.04 * hp))),
                  (c[0] + max(1, int(0.015 * hp)), c[1]), (20, 20, 20), -1)
    return ["phone"]


def _q(v: float) -> float:
    """Quantise to 1/4 px: exact in binary, so +1/-1 through the 1-based .mat is lossless."""
    return round(float(v) * 4) / 4


def _person_record(i: int, person: DrawnPerson, vis: list[int], test: bool) -> Person:
    x0, y0, x1, y1 = person.bbox()
    rec = Person(id=i, center=[_q((x0 + x1) / 2), _q((y0 + y1) / 2)],
                 scale=round(person.height_px / 200.0, 6))
    if test:   # test rects of the release carry only scale and objpos
        return rec
    rec.head_box = [_q(v) for v in person.head_box]
    for j in range(NUM_JOINTS):
        if vis[j] > 0:
            rec.kpts[j] = [_q(person.kpts[j][0]), _q(person.kpts[j][1])]
            rec.kpts_vis[j] = vis[j]
    return rec


def _single_person(people: list[DrawnPerson]) -> list[int]:
    """MPII's 'sufficiently separated' people: boxes that overlap nobody else's."""
    boxes = [p.bbox() for p in people]
    out = []
    for i, a in enumerate(boxes):
        if all(j == i or a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1] for j, b in enumerate(boxes)):
            out.append(i)
    return out


def _video_id(rng: np.random.Generator) -> str:
    return "".join(VIDEO_ALPHABET[int(c)] for c in rng.integers(0, len(VIDEO_ALPHABET), 11))


def training_image(seed: int, index: int, cfg: WorldConfig) -> tuple[Annotation, np.ndarray]:
    """The `index`-th training-world image and its record (0-based, split train or test)."""
    rec, scene = training_scene(seed, index, cfg)
    return rec, scene.image


def training_scene(seed: int, index: int, cfg: WorldConfig) -> tuple[Annotation, Scene]:
    """`training_image` with the whole scene drawn (its bystanders included)."""
    rng = image_rng(seed, STREAM_TRAIN, index)
    activity = ACTIVITIES[int(rng.integers(len(ACTIVITIES)))]
    n = int(rng.choice(np.arange(1, cfg.max_people + 1), p=_people_probs(cfg.max_people)))
    if activity.family == "lying":
        n = min(n, 2)
    scene = render_scene([activity.family] * n, cfg, rng,
                         bystanders=bystander_families(activity.family, cfg.bystanders, rng))
    test = bool(rng.random() < cfg.test_fraction)
    people = [_person_record(i, p, v, test) for i, (p, v) in enumerate(zip(scene.people, scene.vis))]
    rec = Annotation(image=image_name(seed, index), split="test" if test else "train",
                     width=cfg.width, height=cfg.height, video_id=_video_id(rng),
                     video_frame=int(rng.integers(1, 600)),
                     activity_id=-1 if test else activity.act_id,
                     category="" if test else activity.category, activity="" if test else activity.name,
                     single_person=_single_person(scene.people), people=people)
    return rec, scene


def _people_probs(k: int) -> np.ndarray:
    p = np.array([0.55, 0.3, 0.15][:k] + [0.05] * max(0, k - 3))
    return p / p.sum()


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, "OpenCV could not encode a JPEG"
    return buf.tobytes()


def generate_mpii(out: str | os.PathLike, n: int, seed: int, cfg: WorldConfig = WorldConfig(),
                  progress=None, workers: int = 1) -> list[Annotation]:
    """Write `n` training-world images, the MPII `.mat` and `truth.jsonl` under `out`. With
    `workers` > 1 the images are drawn and encoded in that many processes; every image comes from its
    own random stream, so the files are the same whatever the count."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    draw = partial(_write_training_image, out / "images", seed, cfg)
    records = []
    with contextlib.ExitStack() as stack:
        drawn = map(draw, range(n))
        if workers > 1 and n >= 2 * POOL_CHUNK:   # spawn: the caller may hold torch's threads
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
            drawn = pool.imap(draw, range(n), chunksize=POOL_CHUNK)
        for rec in drawn:
            records.append(rec)
            if progress:
                progress(1)
    write_mpii_mat(out / MAT_NAME, records)
    write_jsonl(out / "truth.jsonl", (r.to_dict() for r in records))
    return records


POOL_CHUNK = 32   # images per task handed to a worker process


def _write_training_image(images: Path, seed: int, cfg: WorldConfig, index: int) -> Annotation:
    rec, image = training_image(seed, index, cfg)
    atomic_write_bytes(images / rec.image, encode_jpeg(image, cfg.jpeg_quality))
    return rec


__all__ = ["WorldConfig", "Scene", "render_scene", "bystander_families", "training_image", "training_scene",
           "generate_mpii", "image_name", "encode_jpeg", "image_rng", "MAT_NAME", "ACTIVITY_BY_FAMILY"]
