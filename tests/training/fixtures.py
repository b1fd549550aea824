"""A small generated training world in the real file formats: annotations.jsonl (docs/design.md §3.1),
descriptions/<describer>.jsonl (§3.2) and JPEG images with stick-figure people whose colour and
position the descriptions name, so a tiny model can learn the image–text pairing."""
from __future__ import annotations

import functools
import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from focusclip.data.skeleton import LIMBS

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230), "yellow": (230, 210, 30)}
PLACES = {"left": 0.28, "right": 0.72}
# a standing pose in a unit box (x, y), MPII joint order
POSE = np.array([[0.40, 1.00], [0.42, 0.78], [0.44, 0.55], [0.56, 0.55], [0.58, 0.78], [0.60, 1.00],
                 [0.50, 0.55], [0.50, 0.25], [0.50, 0.18], [0.50, 0.02], [0.25, 0.50], [0.32, 0.38],
                 [0.40, 0.25], [0.60, 0.25], [0.68, 0.38], [0.75, 0.50]])


def person(cx: float, top: float, height: float, rng: np.random.Generator) -> tuple[list, list]:
    kpts = (POSE - [0.5, 0.0]) * height + [cx, top] + rng.normal(0, 1.0, POSE.shape)
    vis = [2] * 16
    if rng.random() < 0.3:                       # an unlabelled joint now and then
        j = int(rng.integers(16))
        vis[j] = 0
        kpts[j] = [-1.0, -1.0]
    return kpts.round(2).tolist(), vis


def make_world(root: Path, n_train: int = 48, n_val: int = 16, seed: int = 0, size=(96, 80),
               describers=("template", "second")) -> dict:
    """Write the world under `root`; returns the paths a training config needs."""
    rng = np.random.default_rng(seed)
    images, desc_dir = root / "images", root / "descriptions"
    images.mkdir(parents=True, exist_ok=True)
    desc_dir.mkdir(parents=True, exist_ok=True)
    anns, descs = [], {d: [] for d in describers}
    w, h = size
    for i in range(n_train + n_val):
        name = f"{i:09d}.jpg"
        colour, place = rng.choice(list(COLOURS)), rng.choice(list(PLACES))
        kpts, vis = person(PLACES[place] * w, 0.15 * h, 0.75 * h, rng)
        img = Image.fromarray(rng.integers(90, 140, (h, w, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(img)
        for a, b in LIMBS:
            if vis[a] and vis[b]:
                draw.line([tuple(kpts[a]), tuple(kpts[b])], fill=COLOURS[colour], width=4)
        img.save(images / name, quality=92)
        anns.append({"image": name, "split": "train" if i < n_train else "val", "width": w, "height": h,
                     "video_id": None, "video_frame": None, "activity_id": -1, "category": "", "activity": "",
                     "single_person": [0],
                     "people": [{"id": 0, "center": [PLACES[place] * w, 0.5 * h], "scale": 0.75 * h / 200,
                                 "head_box": None, "kpts": kpts, "kpts_vis": vis}]})
        for k, d in enumerate(describers):
            text = (f"There is one person in the image, standing on the {place}. The person is drawn in {colour}."
                    if k == 0 else f"A {colour} figure stands upright at the {place} of the picture.")
            descs[d].append({"image": name, "describer": d, "backend": "template", "description": text,
                             "prompt_id": "pose-v1", "prompt_sha": "abc", "params": {}, "finish_reason": "stop",
                             "usage": {}, "created": "2026-01-01T00:00:00Z"})
    (root / "annotations.jsonl").write_text("".join(json.dumps(a) + "\n" for a in anns))
    for d, rows in descs.items():
        (desc_dir / f"{d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"annotations": root / "annotations.jsonl", "descriptions": desc_dir, "images": images}


def tiny_overrides(world: dict, out: Path, **extra) -> list[str]:
    """--set overrides pointing configs/tiny-*.yaml at a generated world."""
    sets = {"data.dataset": world["descriptions"], "data.annotations": world["annotations"],
            "data.images": world["images"], "output_dir": out, **extra}
    return [f"{k}={v}" for k, v in sets.items()]


def trained_tiny(root: Path, texts: list[str], **extra) -> dict:
    """configs/tiny-focusclip.yaml trained 3 steps on a 16-image world under `root` (`extra`: more
    --set overrides); its checkpoint, world, two preprocessed images (saved as pixels.pt) and the
    reference embeddings of those images and `texts` (tensors)."""
    import torch

    from focusclip.training import load_checkpoint
    from focusclip.training.config import load_config
    from focusclip.training.trainer import run_train
    from tests.conftest import REPO

    torch.set_num_threads(1)
    world = make_world(root / "world", n_train=16, n_val=8)
    cfg = load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, root / "run", **{
        "train.max_steps": 3, "train.batch_size": 8, "train.checkpoint_every": 0, **extra}))
    run_train(cfg)
    ckpt = root / "run" / "checkpoints" / "last"
    m = load_checkpoint(ckpt)
    pixels = torch.stack([m.preprocess(Image.open(world["images"] / f"{i:09d}.jpg")) for i in (16, 17)])
    torch.save(pixels, root / "pixels.pt")
    ref = {"image": m.encode_images(pixels), "text": m.encode_texts(texts)}
    return {"ckpt": ckpt, "run": root / "run", "world": world, "pixels": root / "pixels.pt", "ref": ref,
            "root": root}


@functools.lru_cache(maxsize=1)
def damaged_pickles(n_seeds: int = 500) -> dict[str, bytes]:
    """4 KB of seeded random bytes for each kind of exception our loader (`load_pickled`, torch.load
    with weights_only) raises on them (found by trying: on torch 2.13 UnpicklingError, IndexError,
    KeyError, UnicodeDecodeError)."""
    from focusclip.training.checkpoint import load_pickled

    found: dict[str, bytes] = {}
    for seed in range(n_seeds):
        data = random.Random(seed).randbytes(4096)
        try:
            load_pickled(io.BytesIO(data))
        except Exception as e:   # noqa: BLE001 — which kinds arise is what this collects
            found.setdefault(type(e).__name__, data)
    return found
