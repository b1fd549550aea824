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

`--loop` instead runs focus-train's loop on a device (benchmarks/gpu/train.sh): the paper's model
(configs/focusclip.yaml, random init), the prepared set of `--images` such inputs, `--workers`
persistent workers with pinned memory, training.steps.train_step, the step numbers read every
`train.log_every` steps as the trainer reads them. After `--warmup` steps it times `--steps` more:
samples/s, MFU (model FLOPs / peak), and the fraction of the time the loop waited for a batch
(time blocked in the loader's next(); the steps enqueue GPU work without a host sync, so the host
only waits for data there). Target there: data wait ≤ 5% of step time.

    .venv/bin/python benchmarks/train_input.py [--images 64] [--size 224] [--batch-size 16] [--rounds 3]
    .venv/bin/python benchmarks/train_input.py --loop --device cuda [--images 512] [--batch-size 32]
        [--workers 8] [--steps 60] [--peak-tflops X]
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
    from focusclip.core.report import Report
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


def encoder_flops(n: int, d: int, f: int, layers: int) -> int:
    """Forward FLOPs of a transformer encoder over n tokens (a multiply-add = 2): QKV and output
    projections 8nd², QKᵀ and A·V 4n²d, the FFN 4ndf, per layer; norms, softmax, GELU ignored."""
    return layers * (8 * n * d * d + 4 * n * n * d + 4 * n * d * f)


def train_flops_per_sample(cfg, text_len: int) -> tuple[float, float, float]:
    """(training FLOPs = 3 × forward, ViT forward, text forward) per sample; FocusCLIP runs the ViT
    twice (image and weighted image). Vision/text shapes from the config (random-init shapes)."""
    v, t, s = cfg.model.vision, cfg.model.text, cfg.train.image_size
    patches = (s // v.patch_size) ** 2
    vit = encoder_flops(patches + 1, v.hidden_size, v.intermediate_size, v.num_layers) \
        + 2 * patches * 3 * v.patch_size ** 2 * v.hidden_size
    text = encoder_flops(text_len, t.hidden_size, t.intermediate_size, t.num_layers)
    views = 2 if cfg.model.triple else 1
    return 3 * (views * vit + text), vit, text


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    """Dense bf16 peak: H100 SXM / H200 989.4 TFLOP/s, H100 PCIe 756; else --peak-tflops."""
    if given is not None or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return 756.0 if "PCIe" in name else 989.4 if ("H100" in name or "H200" in name) else None


def bench_loop(args) -> int:
    """focus-train's loop (prepared set → persistent pinned workers → train_step, reads every
    log_every steps) on `--device`; samples/s, MFU, and the share of time spent waiting for data."""
    from focusclip.core.report import Report
    from focusclip.training.data import (Collate, FocusDataset, RunBatchSampler, SampleSpec, make_loader,
                                         select_items, training_texts)
    from focusclip.training.dist import Dist
    from focusclip.training.factory import build_model
    from focusclip.training.loss import FocusLoss
    from focusclip.training.optim import build_optimizer, build_scheduler, seed_step
    from focusclip.training.prepare import prepare_set
    from focusclip.training.prepared import open_prepared
    from focusclip.training.stats import StepStats
    from focusclip.core.devices import cpu_threads
    from focusclip.training.steps import make_amp, train_step
    from focusclip.training.text import train_wordpiece

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        origin = build_inputs(root, args.images)
        cfg = config(root, args.config, args.size, True, [
            "model.vision.pretrained=null", "model.text.pretrained=null", f"train.num_workers={args.workers}",
            f"train.precision={'bf16' if device.type == 'cuda' else 'fp32'}", "train.log_every=10"])
        report = Report("bench")
        items, _ = select_items(cfg, report, cfg.model.triple)
        t0 = time.perf_counter()
        plans = prepare_set(cfg, items, report, cfg.model.triple)
        prep_s = time.perf_counter() - t0
        v, t = cfg.model.vision, cfg.train
        spec = SampleSpec(args.size, v.image_mean, v.image_std, cfg.model.triple, train=True, seed=t.seed)
        ds = FocusDataset(items, cfg.data, spec, open_prepared(Path(cfg.data.prepared), plans, items))
        tok = train_wordpiece(training_texts(items, False), cfg.model.text.vocab_size)
        torch.manual_seed(0)
        model = build_model(cfg, tok).to(device)
        collate = Collate(tok, model.config.max_text_length, cfg.data.padding, training_texts(items, cfg.data.flip))
        sampler = RunBatchSampler(len(ds), args.batch_size, 0, 1, t.seed, epochs=10**6)
        batches = iter(make_loader(ds, sampler, collate, args.workers, device.type == "cuda", t.seed, t.prefetch))
        amp, d = make_amp(device, t.precision), Dist(device=device)
        opt, loss_fn = build_optimizer(model, cfg.optim), FocusLoss(cfg.loss.kind, vars(cfg.loss.weights))
        sched = build_scheduler(opt, 10**9, cfg.optim)
        keys = ("loss", *(f"loss_{k}" for k in loss_fn.weights if cfg.model.triple or k == "image_text"), "grad_norm")
        stats = StepStats(keys, device)
        wait, tokens = 0.0, 0
        with cpu_threads(device, args.workers):      # as focus-train does on a CPU
            for step in range(args.warmup + args.steps):
                if step == args.warmup:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                tw = time.perf_counter()
                batch = next(batches)
                if step >= args.warmup:
                    wait += time.perf_counter() - tw
                    tokens += batch["input_ids"].shape[1]
                seed_step(t.seed, 0, step)
                res = train_step(model, model, loss_fn, opt, sched, [batch], d, amp, cfg.optim.grad_clip)
                stats.add(step + 1, res)
                if (step + 1) % t.log_every == 0:
                    stats.read(d, model.alpha, model.log_temperature)
            if device.type == "cuda":
                torch.cuda.synchronize()
            total = time.perf_counter() - start
        del batches
    text_len = round(tokens / args.steps)
    flops, vit, text = train_flops_per_sample(cfg, text_len)
    sps = args.steps * args.batch_size / total
    peak = peak_tflops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; {os.cpu_count()} CPU cores; {cfg.model.name} {args.size}px, batch {args.batch_size}, "
          f"{amp.precision}, {args.workers} workers; inputs: {args.images} × {origin}")
    print(f"prepared set: {1e3 * prep_s / args.images:.1f} ms per image to build ({cfg.train.num_workers} workers)")
    mfu = f"MFU {100 * sps * flops / 1e12 / peak:.1f}%" if peak else "MFU n/a (pass --peak-tflops)"
    print(f"loop: {args.steps} steps after {args.warmup} warm-up: {sps:.1f} samples/s, step {1e3 * total / args.steps:.1f} ms, "
          f"text {text_len} tokens → {flops / 1e9:.1f} GFLOP/sample, {sps * flops / 1e12:.2f} TFLOP/s, {mfu}")
    share = wait / total
    print(f"data wait: {1e3 * wait / args.steps:.2f} ms per step = {100 * share:.1f}% of step time (target <= 5%) "
          f"{'OK' if share <= 0.05 else 'MISSED'}")
    return 0 if share <= 0.05 or args.dry_run else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--e2e-steps", type=int, default=4)
    ap.add_argument("--loop", action="store_true", help="time focus-train's loop on --device instead")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", default="configs/focusclip.yaml")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--dry-run", action="store_true", help="with --loop: report, never fail on the target")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.loop:
        return bench_loop(args)
    torch.set_num_threads(1)
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
