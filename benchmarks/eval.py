"""focus-eval against its own limit: the slower of its two stages, each measured alone, and the whole
command, all in the same run (issue 17; it replaces issue 8's unreachable "10× the one-image loop").

focus-eval scores a task in two stages that run at once: decoding + preprocessing (a DataLoader over
`--workers` processes) and the image encoder on the batches they deliver (with the torch threads the
command leaves it: the cores less the workers, `core.devices.cpu_threads`). Neither can go faster
together than alone, so the slower stage alone bounds the command:
  decode    the command's DataLoader alone (same dataset, batch size, workers), encoder skipped;
  encode    encode_images on batches of ready pixels (decoded beforehand), the command's thread count;
  command   the `focus-eval` console script on the same task (`images_per_s` of results.json: the
            task's scoring, both stages together, worker start-up included; interpreter start-up,
            model loading and the classifier excluded), and in-process `score_samples` beside it.
Reported: each rate and command / min(decode, encode). Target ≥ 0.8. The rounds interleave the
three so a busy machine slows them alike; each figure is the best round.

Several models in one pass (issue 34): `focus-eval A B C` on the same task, three checkpoints of the
same shape (other seeds, so other weights; they share the preprocessing), against one model alone and
so against three single-model passes. Reported: the three-model pass's scoring time over one model's
(target ≤ 1.5). Also a mixed trio — the checkpoint, a tiny CLIP and a tiny SigLIP, three processors —
against the sum of its three single passes.

The model is a focus-train checkpoint with the shapes of configs/tiny-clip.yaml (64×64 input, ViT
patch 8, 2 layers, width 64), saved with training.checkpoint.save_checkpoint; the images a generated
UTKFace folder (200×200 JPEG `.jpg.chip.jpg`, docs/formats.md §6) read by the real reader for the
`utkface-race` task. The batched scores are checked against the one-image-at-a-time loop.

    .venv/bin/python benchmarks/eval.py [--images 4096] [--batch-size 64] [--workers N] [--rounds 3] [--no-multi]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.8
MULTI_TARGET = 1.5      # three models in one pass cost at most this many times one model


def write_utkface(root: Path, n: int, seed: int = 0) -> None:
    """n smooth 200×200 face-crop-sized JPEGs with well-formed UTKFace names."""
    rng = np.random.default_rng(seed)
    folder = root / "utkface" / "UTKFace"
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:200, 0:200]
    for i in range(n):
        base = rng.integers(0, 256, 3)
        img = (base + 0.4 * xx[..., None] * rng.random(3) + 0.3 * yy[..., None] * rng.random(3)) % 256
        age, gender, race = int(rng.integers(1, 90)), int(rng.integers(2)), int(rng.integers(5))
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{age}_{gender}_{race}_2017011{i:010d}.jpg.chip.jpg",
                                                   quality=90)


def tiny_checkpoint(run_dir: Path, seed: int = 0):
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    from focusclip.eval.tasks import all_tasks
    from focusclip.training.checkpoint import load_checkpoint, save_checkpoint
    from focusclip.training.model import FocusCLIPModel
    from focusclip.training.text import train_wordpiece

    import torch

    prompts = [p for t in all_tasks() for row in t.prompts(True) for p in row]
    tok = train_wordpiece(prompts, vocab_size=1000)
    torch.manual_seed(seed)
    vit = ViTModel(ViTConfig(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=128), add_pooling_layer=False)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=256), add_pooling_layer=False)
    model = FocusCLIPModel.from_towers(vit, bert, name="tiny-clip",
                                       embed_dim=64, triple=False, image_size=64, max_text_length=256)
    save_checkpoint(run_dir, 1, model, tok, "model: {name: tiny-clip}\n", {"step": 1, "epoch": 0})
    return load_checkpoint(run_dir, device="cpu")


def decode_alone(model, samples, batch_size: int, workers: int) -> tuple[float, float]:
    """(images/s, worker CPU ms per image) of the command's DataLoader, nothing consuming the batches."""
    import torch

    from focusclip.eval.zeroshot import image_loader

    c0, t0 = children_cpu(), time.perf_counter()
    n = sum(len(index) for _, index, _ in image_loader(model, samples, batch_size, workers, torch.device("cpu")))
    return n / (time.perf_counter() - t0), 1e3 * (children_cpu() - c0) / n


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the loader's workers, once it shut them down)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def encode_alone(model, batches, workers: int) -> tuple[float, float]:
    """(images/s, CPU ms per image) of encode_images on ready pixel batches, with the command's threads."""
    import torch

    from focusclip.core.devices import cpu_threads

    with torch.no_grad(), cpu_threads(torch.device("cpu"), workers):
        c0, t0 = time.process_time(), time.perf_counter()
        for pixels in batches:
            model.encode_images(pixels)
        n = sum(len(b) for b in batches)
        return n / (time.perf_counter() - t0), 1e3 * (time.process_time() - c0) / n


def score_one_by_one(model, samples, classifier) -> np.ndarray:
    """The naive loop the batched scores are checked against: load, preprocess, encode one image,
    score it → [N, C] cosine scores."""
    import torch

    from focusclip.eval.readers import load_image

    weights = classifier.float()
    rows = []
    with torch.no_grad():
        for s in samples:
            feats = model.encode_images(model.preprocess(load_image(s.image))[None])     # [1, D]
            rows.append((feats.float() @ weights.to(feats.device)).cpu().numpy()[0])
    return np.stack(rows) if rows else np.zeros((0, classifier.shape[1]), np.float32)


def command(ckpt: Path | list[Path], data_root: Path, out: Path, args) -> tuple[float, float]:
    """(images/s of the task's scoring as focus-eval reports it, the process's wall seconds); with
    several models, of the one pass that scores them all."""
    models = [str(c) for c in (ckpt if isinstance(ckpt, list) else [ckpt])]
    t0 = time.perf_counter()
    res = subprocess.run([str(REPO / ".venv/bin/focus-eval"), *models, "--data-root", str(data_root),
                          "--task", "utkface-race", "-o", str(out), "--batch-size", str(args.batch_size),
                          "--workers", str(args.workers), "--device", "cpu", "--force"],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"focus-eval failed: {res.stderr[-2000:]}")
    results = json.loads(out.read_text())
    if "models" in results:                       # several: every model's entry has the pass's rate
        results = json.loads((out.parent / results["models"][0]["results"]).read_text())
    return results["tasks"]["utkface-race"]["images_per_s"], wall


def dual_encoders(root: Path) -> list[Path]:
    """The tiny CLIP and SigLIP folders of the tests (random, saved with save_pretrained)."""
    sys.path.insert(0, str(REPO))
    from tests.eval.tiny_models import save_tiny_hf_clip, save_tiny_siglip

    return [save_tiny_hf_clip(root / "clip-tiny", image_size=64), save_tiny_siglip(root / "siglip-tiny", image_size=64)]


def measure_multi(tmp: Path, args) -> bool:
    """Three models in one focus-eval pass against one model alone (rounds interleaved, best round),
    and a mixed trio against its three single passes; prints the ratios, True when the target holds."""
    runs = [tmp / "run"] + [tmp / f"run-{seed}" for seed in (1, 2)]
    for seed, run in zip((1, 2), runs[1:]):
        tiny_checkpoint(run, seed=seed)
    clip, siglip = dual_encoders(tmp)
    passes = {"one": [runs[0]], "three": runs, "mixed": [runs[0], clip, siglip], "clip": [clip], "siglip": [siglip]}
    best = dict.fromkeys(passes, 0.0)
    for _ in range(args.rounds):
        for name, models in passes.items():
            ips, _ = command(models, tmp / "data", tmp / "multi" / f"{name}.json", args)
            best[name] = max(best[name], ips)
    ratio = best["one"] / best["three"]                 # seconds per image, three models over one
    singles = 1 / best["one"] + 1 / best["clip"] + 1 / best["siglip"]
    print(f"several models in one pass (scoring time per image, best of {args.rounds}):")
    print(f"  one checkpoint                              {best['one']:8.0f} img/s")
    print(f"  three checkpoints in one pass               {best['three']:8.0f} img/s   "
          f"{ratio:.2f}x one model (target <= {MULTI_TARGET}) {'OK' if ratio <= MULTI_TARGET else 'MISSED'}; "
          f"{ratio / 3:.2f}x three single passes")
    print(f"  checkpoint + CLIP + SigLIP in one pass      {best['mixed']:8.0f} img/s   "
          f"{(1 / best['mixed']) / singles:.2f}x their three single passes "
          f"(CLIP alone {best['clip']:.0f}, SigLIP alone {best['siglip']:.0f} img/s)")
    return ratio <= MULTI_TARGET


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=None, help="default: focus-eval's default")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-multi", action="store_true", help="skip the several-models-in-one-pass measurement")
    args = ap.parse_args()

    import torch

    from focusclip.eval.readers import load_image, read_for_task
    from focusclip.eval.run import default_workers, task_samples
    from focusclip.eval.tasks import select_tasks
    from focusclip.eval.zeroshot import build_classifier, score_samples

    args.workers = default_workers() if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_utkface(tmp / "data", args.images)
        model = tiny_checkpoint(tmp / "run")
        task = select_tasks(["utkface-race"])[0]
        samples, _, _ = task_samples(task, read_for_task(task, tmp / "data"), None)
        classifier = build_classifier(model, task.prompts())                       # [D, C]
        pixels = torch.stack([model.preprocess(load_image(s.image)) for s in samples])   # [N, 3, S, S]
        batches = list(pixels.split(args.batch_size))
        best = {"decode": 0.0, "encode": 0.0, "command": 0.0, "in-process": 0.0}
        cpu = {"decode": [], "encode": [], "worker": [], "main": []}      # ms per image, per round
        wall = float("inf")
        for r in range(args.rounds):
            ips, ms = decode_alone(model, samples, args.batch_size, args.workers)
            best["decode"] = max(best["decode"], ips)
            cpu["decode"].append(ms)
            ips, ms = encode_alone(model, batches, args.workers)
            best["encode"] = max(best["encode"], ips)
            cpu["encode"].append(ms)
            ips, w = command(tmp / "run", tmp / "data", tmp / "results.json", args)
            best["command"], wall = max(best["command"], ips), min(wall, w)
            c0, m0, t0 = children_cpu(), time.process_time(), time.perf_counter()
            scores, bad = score_samples(model, samples, classifier, batch_size=args.batch_size,
                                        workers=args.workers, device=torch.device("cpu"))
            best["in-process"] = max(best["in-process"], len(samples) / (time.perf_counter() - t0))
            cpu["worker"].append(1e3 * (children_cpu() - c0) / len(samples))
            cpu["main"].append(1e3 * (time.process_time() - m0) / len(samples))
        naive = score_one_by_one(model, samples[:256], classifier)
        multi_ok = True if args.no_multi else measure_multi(tmp, args)
    assert not bad, bad
    same = np.allclose(scores[:256], naive, atol=1e-4)
    bound = min(best["decode"], best["encode"])
    slower = "decode" if best["decode"] <= best["encode"] else "encode"
    ratio = best["command"] / bound
    print(f"model: {model.name} (64×64 ViT, 2 layers, width 64); {len(samples)} UTKFace 200×200 JPEGs; "
          f"batch {args.batch_size}, {args.workers} worker(s), {os.cpu_count()} CPU cores, load average "
          f"{os.getloadavg()[0]:.1f}; best of {args.rounds} rounds")
    med = {k: float(np.median(v)) for k, v in cpu.items()}
    print(f"  decode + preprocess alone ({args.workers} workers)   {best['decode']:8.0f} img/s   "
          f"{med['decode']:.3f} ms CPU per image (the workers)")
    print(f"  encoder alone (ready batches)               {best['encode']:8.0f} img/s   "
          f"{med['encode']:.3f} ms CPU per image")
    print(f"  focus-eval (the command, both at once)      {best['command']:8.0f} img/s   "
          f"(process wall {wall:.1f} s with start-up and model loading)")
    print(f"  score_samples in-process                    {best['in-process']:8.0f} img/s   "
          f"{med['worker']:.3f} ms CPU per image in the workers, {med['main']:.3f} in the encoder's process")
    print(f"same scores as the one-image loop: {same}")
    # CPU time is what other processes on a shared machine cannot inflate: with a core per busy
    # process the command runs at 1 / its busiest process's CPU per image
    cpu_ratio = max(med["decode"], med["encode"]) / max(med["worker"], med["main"])
    print(f"command / slower stage ({slower}): {ratio:.2f} wall (target >= {TARGET}) "
          f"{'OK' if ratio >= TARGET and same else 'MISSED'}; in CPU time per image {cpu_ratio:.2f}")
    return 0 if ratio >= TARGET and same and multi_ok else 1


if __name__ == "__main__":
    sys.exit(main())
