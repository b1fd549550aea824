"""Samples/s of the training input pipeline, decoding the source files (today's path) vs reading the
prepared set (`data.prepared`), on MPII-size inputs, per worker, in the same run; the end-to-end
step rate of the tiny FocusCLIP with each; and the storage options the prepared set chose between.

Inputs: `--images` 1280×720 JPEGs with full-size heatmap PNGs (`focus-data heatmaps`' format) and two
describers' descriptions of real length (60–220 words). The JPEGs are the real MPII samples of
../shared/samples/mpii (the 1280×720 ones, cycled; their people render the heatmaps), or generated
1280×720 JPEGs of the same byte size when that folder is absent.
  pipeline  one process, one thread: FocusDataset samples (decode or prepared read, geometry, normalise,
            heatmap) + Collate (tokenise, pad, stack) at `--size` (224, the paper's), paper geometry
            (squash, heatmap PNGs) → samples/s of CPU time (robust to other processes) and wall time.
            A data worker is such a process: the ratio is per worker. Target: ≥ 20×.
  e2e       the tiny FocusCLIP (configs/tiny-focusclip.yaml, 64 px) on the same 1280×720 inputs: loader
            (in-process) → training.steps.train_step, steps/s. Target: ≥ 3×.
  storage   per image at `--size`: reading a prepared uint8 row vs decoding a small JPEG (quality 95)
            or PNG at that size, each through the same pixel formula; disk per 1,000 images.
Paths alternate round by round so a busy machine slows both alike. Exit 1 when a target is missed.

    .venv/bin/python benchmarks/train_input.py [--images 64] [--size 224] [--batch-size 16] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("FOCUSCLIP_SHARED", REPO.parent / "shared")) / "samples" / "mpii"
TARGETS = {"pipeline": 20.0, "e2e": 3.0}
WORDS = ("the person is standing sitting with left right arm leg raised bent straight knee elbow hand "
         "foot head torso slightly forward backward near shoulder hip wrist ankle holding looking towards "
         "camera ground while walking running playing curling dancing of a an on in at and").split()


def _people_of_samples() -> dict[str, list[dict]] | None:
    if not (SAMPLES / "test_mpii.json").is_file():
        return None
    people: dict[str, list[dict]] = {}
    for row in json.loads((SAMPLES / "test_mpii.json").read_text()):
        if Image.open(SAMPLES / row["image"]).size == (1280, 720):
            people.setdefault(row["image"], []).append(
                {"kpts": [[x - 1.0, y - 1.0] for x, y in row["joints"]], "kpts_vis": row["joints_vis"]})
    return people


def _generated(i: int, rng: np.random.Generator) -> tuple[bytes, list[dict]]:
    """A 1280×720 JPEG about as large as an MPII frame (smooth colour fields + noise), one person."""
    yy, xx = np.mgrid[0:720, 0:1280].astype(np.float32)
    img = (rng.integers(0, 256, 3) + 0.1 * xx[..., None] * rng.random(3) + 0.1 * yy[..., None] * rng.random(3)
           + rng.normal(0, 18, (720, 1280, 3))) % 256
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, "JPEG", quality=80)
    x0, y0, h = rng.uniform(100, 1000), rng.uniform(50, 200), rng.uniform(300, 500)
    kpts = np.stack([x0 + rng.uniform(0, 0.5 * h, 16), y0 + rng.uniform(0, h, 16)], -1)
    return buf.getvalue(), [{"kpts": kpts.tolist(), "kpts_vis": [2] * 16}]


def build_inputs(root: Path, n: int) -> str:
    """images/, heatmaps/ (full-size PNGs), annotations.jsonl, descriptions/{a,b}.jsonl; → their origin."""
    from focusclip.data.heatmaps import render_heatmaps, to_uint8

    for sub in ("images", "heatmaps", "descriptions"):
        (root / sub).mkdir(parents=True)
    people, rng, words = _people_of_samples(), np.random.default_rng(0), random.Random(0)
    anns, descs = [], {"a": [], "b": []}
    for i in range(n):
        name = f"{i:09d}.jpg"
        if people:
            src = sorted(people)[i % len(people)]
            shutil.copyfile(SAMPLES / src, root / "images" / name)
            ppl = people[src]
        else:
            data, ppl = _generated(i, rng)
            (root / "images" / name).write_bytes(data)
        hm = to_uint8(render_heatmaps(ppl, (720, 1280))).numpy()
        Image.fromarray(hm, mode="L").save(root / "heatmaps" / f"{i:09d}.png")
        anns.append({"image": name, "split": "train", "width": 1280, "height": 720, "activity_id": -1,
                     "category": "", "activity": "", "people": [{"id": k, **p} for k, p in enumerate(ppl)]})
        for d in descs:
            text = " ".join(words.choice(WORDS) for _ in range(words.randint(60, 220))) + "."
            descs[d].append({"image": name, "describer": d, "description": text, "prompt_sha": "x"})
    (root / "annotations.jsonl").write_text("".join(json.dumps(a) + "\n" for a in anns))
    for d, rows in descs.items():
        (root / "descriptions" / f"{d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"the {len(people)} real 1280×720 MPII samples, cycled" if people else "generated 1280×720 JPEGs"


def config(root: Path, base: str, size: int, prepared: bool, extra=()):
    from focusclip.training.config import load_config

    sets = [f"data.dataset={root / 'descriptions'}", f"data.annotations={root / 'annotations.jsonl'}",
            f"data.images={root / 'images'}", f"data.heatmaps={root / 'heatmaps'}", "data.resize=squash",
            f"train.image_size={size}", "train.num_workers=2", f"output_dir={root / 'run'}", *extra]
    if prepared:
        sets.append(f"data.prepared={root / 'prepared'}")
    return load_config(REPO / base, sets)


def datasets(root: Path, base: str, size: int, extra=()):
    """{"decode": FocusDataset, "prepared": FocusDataset} of the same items, and the prepare time."""
    from focusclip.data.io import Report
    from focusclip.training.data import FocusDataset, SampleSpec, select_items
    from focusclip.training.prepare import prepare_set
    from focusclip.training.prepared import open_prepared

    cfg = config(root, base, size, True, extra)
    items, _ = select_items(cfg, Report("bench"), with_heatmaps=True)
    t0 = time.perf_counter()
    plans = prepare_set(cfg, items, Report("bench"), with_heatmaps=True)
    seconds = time.perf_counter() - t0
    v = cfg.model.vision
    spec = SampleSpec(size, v.image_mean, v.image_std, with_heatmaps=True, train=True, seed=0)
    frames = open_prepared(Path(cfg.data.prepared), plans, items)
    return ({"decode": FocusDataset(items, cfg.data, spec), "prepared": FocusDataset(items, cfg.data, spec, frames)},
            cfg, seconds)


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def bench_pipeline(sets: dict, collate, batches, rounds: int) -> dict:
    cpu = {k: 0.0 for k in sets}
    wall = dict(cpu)
    for r in range(rounds + 1):                      # round 0 warms up (page cache, memmaps)
        for name, ds in sets.items():
            c, w = timed(lambda ds=ds: [collate([ds[k] for k in b]) for b in batches])
            if r:
                cpu[name] += c
                wall[name] += w
    n = rounds * sum(len(b) for b in batches)
    return {k: (n / cpu[k], n / wall[k]) for k in sets}


def bench_e2e(root: Path, args) -> tuple[dict, float]:
    """steps/s of loader → train_step, tiny FocusCLIP at 64 px, each path."""
    from focusclip.training.data import Collate, EpochBatchSampler, make_loader, training_texts
    from focusclip.training.dist import Dist
    from focusclip.training.factory import build_model
    from focusclip.training.loss import FocusLoss
    from focusclip.training.optim import build_optimizer, build_scheduler
    from focusclip.training.steps import make_amp, train_step
    from focusclip.training.text import train_wordpiece

    sets, cfg, prep_s = datasets(root, "configs/tiny-focusclip.yaml", 64)
    tok = train_wordpiece([t for it in sets["decode"].items for t in it.descriptions], 1000)
    torch.manual_seed(0)
    model = build_model(cfg, tok)
    opt, amp, d = build_optimizer(model, cfg.optim), make_amp(torch.device("cpu"), "fp32"), Dist()
    sched, loss_fn = build_scheduler(opt, 10**9, cfg.optim), FocusLoss()
    collate = Collate(tok, 256, "longest", training_texts(sets["decode"].items, cfg.data.flip))
    n_items = len(sets["decode"])
    cpu = {k: 0.0 for k in sets}
    wall = dict(cpu)

    def run(ds, epoch):
        sampler = EpochBatchSampler(n_items, args.batch_size, seed=0, epoch=epoch)
        batches = iter(make_loader(ds, sampler, collate, 0))
        for _ in range(args.e2e_steps):
            train_step(model, model, loss_fn, opt, sched, [next(batches)], d, amp, 1.0)

    for r in range(args.rounds + 1):
        for name, ds in sets.items():
            c, w = timed(lambda ds=ds: run(ds, r))
            if r:
                cpu[name] += c
                wall[name] += w
    n = args.rounds * args.e2e_steps
    return {k: (n / cpu[k], n / wall[k]) for k in sets}, prep_s / n_items


def bench_storage(sets: dict, size: int, mean, std, rounds: int) -> dict:
    """ms per image (best of `rounds` interleaved rounds) and bytes per 1,000 images of each way to
    keep an image at training size, each read into normalised pixels through the same formula."""
    from focusclip.training.transforms import array_to_pixels

    prepared = sets["prepared"]
    rows = [prepared.frames.frame("images", i, it.image)[0] for i, it in enumerate(prepared.items)]   # memmap views
    readers = {"uint8 memmap (chosen)": (rows, lambda r: r)}
    for fmt, kw in (("JPEG q95", {"format": "JPEG", "quality": 95}), ("PNG", {"format": "PNG"})):
        blobs = []
        for r in rows:
            buf = io.BytesIO()
            Image.fromarray(np.array(r)).save(buf, **kw)
            blobs.append(buf.getvalue())
        readers[fmt] = (blobs, lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")))
    best = {k: float("inf") for k in readers}
    for _ in range(rounds + 1):
        for k, (data, read) in readers.items():
            c, _ = timed(lambda data=data, read=read: [array_to_pixels(read(x), mean, std) for x in data])
            best[k] = min(best[k], 1e3 * c / len(data))
    disk = {"uint8 memmap (chosen)": size * size * 3 * 1000,
            **{k: sum(map(len, readers[k][0])) * 1000 / len(rows) for k in readers if k != "uint8 memmap (chosen)"}}
    return {k: (best[k], disk[k]) for k in readers}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--e2e-steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from focusclip.training.data import Collate, EpochBatchSampler, training_texts
    from focusclip.training.text import train_wordpiece

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        origin = build_inputs(root, args.images)
        sets, cfg, prep_s = datasets(root, "configs/focusclip.yaml", args.size)
        tok = train_wordpiece([t for it in sets["decode"].items for t in it.descriptions], 30522)
        collate = Collate(tok, 512, "longest", training_texts(sets["decode"].items, cfg.data.flip))   # as focus-train
        batches = list(EpochBatchSampler(args.images, args.batch_size, seed=0))
        pipe = bench_pipeline(sets, collate, batches, args.rounds)
        storage = bench_storage(sets, args.size, cfg.model.vision.image_mean, cfg.model.vision.image_std, args.rounds)
        e2e, _ = bench_e2e(root, args)
    r_pipe = pipe["prepared"][0] / pipe["decode"][0]
    r_e2e = e2e["prepared"][0] / e2e["decode"][0]
    print(f"inputs: {args.images} × {origin}, heatmap PNGs at 1280×720, 2 describers; {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}; 1 thread")
    print(f"input pipeline at {args.size}px (squash, PNG heatmaps), batch {args.batch_size}, per worker:")
    for k, (c, w) in pipe.items():
        print(f"  {k:9s} {c:8.1f} samples/s (CPU time)  {w:8.1f} samples/s (wall)  {1e3 / c:6.2f} ms/sample")
    print(f"  prepare (once): {1e3 * prep_s / args.images:.1f} ms per image, 1 process")
    print(f"storage of a {args.size}×{args.size} image (read/decode + normalise, 1 thread, best round):")
    for k, (ms, disk) in storage.items():
        print(f"  {k:22s} {ms:6.3f} ms/image   {disk / 2**20:7.1f} MiB per 1,000 images")
    print(f"end to end, tiny FocusCLIP at 64px, batch {args.batch_size}, loader in-process:")
    for k, (c, w) in e2e.items():
        print(f"  {k:9s} {c:6.2f} steps/s (CPU time)  {w:6.2f} steps/s (wall)")
    ok = r_pipe >= TARGETS["pipeline"] and r_e2e >= TARGETS["e2e"]
    print(f"prepared / decode: input pipeline {r_pipe:.1f}x (target >= {TARGETS['pipeline']:.0f}x, wall "
          f"{pipe['prepared'][1] / pipe['decode'][1]:.1f}x); end to end {r_e2e:.1f}x (target >= "
          f"{TARGETS['e2e']:.0f}x, wall {e2e['prepared'][1] / e2e['decode'][1]:.1f}x) {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
