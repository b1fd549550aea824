"""Held-out evaluation sets of the synthetic world, in the official layouts the eval readers know.

- Stanford 40 Actions (docs/formats.md §8): `stanford40/JPEGImages/<action>_<NNN>.jpg`,
  `XMLAnnotations/<action>_<NNN>.xml` (`object/action`, `object/bndbox`), `ImageSplits/actions.txt`
  (header line, then one `name<TAB>count` line for each of the 40 real classes), `train.txt`,
  `test.txt` and per-class `<action>_{train,test}.txt`. Only the classes a pose family can draw have
  images; the others are listed with a count of 0, as a subset of the real data would be. With
  `WorldConfig.bystanders` = K each image holds the training world's layout: K bystanders doing other
  activities beside the person the class and the box are about.
- UTKFace (docs/formats.md §6): `utkface/UTKFace/<age>_<gender>_<race>_<17-digit date>.jpg.chip.jpg`,
  200×200, one whole person; the age group (child 3–9 vs adult 30+) shows only in body proportions.
  Gender and race are drawn at random and carry no signal; one malformed name (no race field) is
  written as in the real release, so readers must skip it. No bystanders: the age is one person's.
Eval images come from their own random streams, disjoint from the training images.
"""
from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from focusclip.core.io import atomic_write_bytes, atomic_write_text
from focusclip.data.synthetic.world import (Scene, WorldConfig, bystander_families, encode_jpeg, image_rng,
                                            render_scene)
from focusclip.data.synthetic.pose import ACTIVITIES

STREAM_STANFORD, STREAM_UTK = 2, 3

# The 40 classes of Stanford 40 Actions (docs/formats.md §8), alphabetical.
STANFORD40_CLASSES = (
    "applauding", "blowing_bubbles", "brushing_teeth", "cleaning_the_floor", "climbing", "cooking",
    "cutting_trees", "cutting_vegetables", "drinking", "feeding_a_horse", "fishing", "fixing_a_bike",
    "fixing_a_car", "gardening", "holding_an_umbrella", "jumping", "looking_through_a_microscope",
    "looking_through_a_telescope", "phoning", "playing_guitar", "playing_violin", "pouring_liquid",
    "pushing_a_cart", "reading", "riding_a_bike", "riding_a_horse", "rowing_a_boat", "running",
    "shooting_an_arrow", "smoking", "taking_photos", "texting_message", "throwing_frisby",
    "using_a_computer", "walking_the_dog", "washing_dishes", "watching_TV", "waving_hands",
    "writing_on_a_board", "writing_on_a_book",
)
# Stanford 40 class → the pose family that draws it.
DRAWN_CLASSES = {a.stanford40: a.family for a in ACTIVITIES if a.stanford40}
UTK_FAMILIES = ("standing", "walking", "waving", "arms_raised", "applauding", "phoning")
MALFORMED_UTK = "39_1_20170116174525125.jpg.chip.jpg"   # a real malformed name (no race field)


def stanford40_counts(n_test: int) -> tuple[int, int]:
    """Images per drawn class in (train, test) for about `n_test` test images in all."""
    per_test = max(1, round(n_test / len(DRAWN_CLASSES)))
    return max(1, per_test // 4), per_test


def _stanford_xml(name: str, action: str, size: tuple[int, int], box: tuple[float, ...]) -> str:
    w, h = size
    x0, y0, x1, y1 = (int(round(v)) for v in (max(0, box[0]), max(0, box[1]), min(w - 1, box[2]), min(h - 1, box[3])))
    return (f"<annotation>\n  <filename>{escape(name)}</filename>\n  <folder>Stanford40</folder>\n"
            f"  <object>\n    <action>{escape(action)}</action>\n    <bndbox>\n"
            f"      <xmax>{x1}</xmax>\n      <xmin>{x0}</xmin>\n      <ymax>{y1}</ymax>\n      <ymin>{y0}</ymin>\n"
            f"    </bndbox>\n    <name>person</name>\n  </object>\n"
            f"  <size>\n    <depth>3</depth>\n    <height>{h}</height>\n    <width>{w}</width>\n  </size>\n"
            "</annotation>\n")


def generate_stanford40(root: str | os.PathLike, n_test: int, seed: int, cfg: WorldConfig = WorldConfig(),
                        progress=None) -> dict[str, dict[str, list[str]]]:
    """Write about `n_test` test images (spread over the drawn classes) plus a quarter as many train
    images under `root/stanford40`. Returns {class: {"train": names, "test": names}}."""
    root = Path(root) / "stanford40"
    splits: dict[str, dict[str, list[str]]] = {c: {"train": [], "test": []} for c in STANFORD40_CLASSES}
    for index, action, name, part in _stanford_items(n_test):
        scene, size = stanford40_scene(seed, index, action, cfg)
        atomic_write_bytes(root / "JPEGImages" / name, encode_jpeg(scene.image, cfg.jpeg_quality))
        atomic_write_text(root / "XMLAnnotations" / name.replace(".jpg", ".xml"),
                          _stanford_xml(name, action, size, scene.people[0].bbox()))
        splits[action][part].append(name)
        if progress:
            progress(1)
    _stanford_splits(root / "ImageSplits", splits)
    return {c: s for c, s in splits.items() if s["train"] or s["test"]}


def _stanford_items(n_test: int):
    """(index, action, file name, "train" or "test") of every Stanford 40 image, in drawing order."""
    per_train, per_test = stanford40_counts(n_test)
    index = 0
    for action in sorted(DRAWN_CLASSES):
        for k in range(per_train + per_test):
            yield index, action, f"{action}_{k + 1:03d}.jpg", "train" if k < per_train else "test"
            index += 1


def stanford40_bystanders(n_test: int, seed: int, cfg: WorldConfig, part: str = "test") -> dict[str, list[dict]]:
    """What `generate_stanford40` drew beside each image's person, which the official layout cannot hold:
    {file name: [{"action": its Stanford 40 class or None (a family no class draws, e.g. standing),
    "family", "height_ratio": its height over the subject's}]} for the images of `part`, each scene
    drawn again from its own random stream (the same pixels), so it needs no file of the world's.
    A diagnostic for benchmarks: which answers name a bystander's activity rather than the subject's."""
    by_family = {f: c for c, f in DRAWN_CLASSES.items()}
    out = {}
    for index, action, name, p in _stanford_items(n_test):
        if p != part:
            continue
        scene, _ = stanford40_scene(seed, index, action, cfg)
        height = scene.people[0].height_px
        out[name] = [{"action": by_family.get(b.family), "family": b.family,
                      "height_ratio": float(b.height_px / height)} for b in scene.bystanders]
    return out


def stanford40_scene(seed: int, index: int, action: str, cfg: WorldConfig) -> tuple[Scene, tuple[int, int]]:
    """The `index`-th Stanford 40 image (all classes counted in order), of `action`, and its (w, h):
    one person doing it, plus `cfg.bystanders` doing other activities."""
    rng = image_rng(seed, STREAM_STANFORD, index)
    size = (cfg.width, cfg.height) if rng.random() < 0.6 else (cfg.height, cfg.width)
    family = DRAWN_CLASSES[action]
    scene = render_scene([family], cfg, rng, size=size, fill=(0.6, 0.85),
                         bystanders=bystander_families(family, cfg.bystanders, rng))
    return scene, size


def _stanford_splits(folder: Path, splits: dict[str, dict[str, list[str]]]) -> None:
    lines = ["action_name\tnumber_of_images"]
    lines += [f"{c}\t{len(s['train']) + len(s['test'])}" for c, s in splits.items()]
    atomic_write_text(folder / "actions.txt", "\n".join(lines) + "\n")
    for part in ("train", "test"):
        every = [n for s in splits.values() for n in s[part]]
        atomic_write_text(folder / f"{part}.txt", "".join(f"{n}\n" for n in every))
        for c, s in splits.items():
            if s[part]:
                atomic_write_text(folder / f"{c}_{part}.txt", "".join(f"{n}\n" for n in s[part]))


def utk_name(age: int, gender: int, race: int, rng: np.random.Generator) -> str:
    """`<age>_<gender>_<race>_<yyyymmddHHMMSSFFF>.jpg.chip.jpg` with a date in January 2017."""
    d = [int(rng.integers(1, 29)), int(rng.integers(0, 24)), int(rng.integers(0, 60)),
         int(rng.integers(0, 60)), int(rng.integers(0, 1000))]
    return f"{age}_{gender}_{race}_201701{d[0]:02d}{d[1]:02d}{d[2]:02d}{d[3]:02d}{d[4]:03d}.jpg.chip.jpg"


def generate_utkface(root: str | os.PathLike, n: int, seed: int, cfg: WorldConfig = WorldConfig(),
                     progress=None) -> dict[str, int]:
    """Write `n` 200×200 images, half children (age 3–9) and half adults (30–70), plus one file with a
    malformed name. Returns {file name: age}."""
    folder = Path(root) / "utkface" / "UTKFace"
    quiet = WorldConfig(**{**cfg.__dict__, "clutter": cfg.clutter * 0.5, "occluder_prob": 0.0})
    ages: dict[str, int] = {}
    for i in range(n):
        rng = image_rng(seed, STREAM_UTK, i)
        child = i % 2 == 0
        family = UTK_FAMILIES[int(rng.integers(len(UTK_FAMILIES)))]
        # Children are drawn as tall as adults: only proportions tell the age group apart.
        scene = render_scene([family], quiet, rng, size=(200, 200), child=[child],
                             fill=(0.7 / 0.68, 0.8 / 0.68) if child else (0.7, 0.8))
        age = int(rng.integers(3, 10)) if child else int(rng.integers(30, 71))
        name = utk_name(age, int(rng.integers(0, 2)), int(rng.integers(0, 5)), rng)
        while name in ages:
            name = utk_name(age, int(rng.integers(0, 2)), int(rng.integers(0, 5)), rng)
        atomic_write_bytes(folder / name, encode_jpeg(scene.image, cfg.jpeg_quality))
        ages[name] = age
        if progress:
            progress(1)
    if n:
        rng = image_rng(seed, STREAM_UTK, n)
        scene = render_scene(["standing"], quiet, rng, size=(200, 200), fill=(0.7, 0.8))
        atomic_write_bytes(folder / MALFORMED_UTK, encode_jpeg(scene.image, cfg.jpeg_quality))
    return ages
