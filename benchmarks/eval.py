"""Images/s of focus-eval's batched zero-shot scoring vs the one-image-at-a-time loop, same tiny model,
same images, same run. Target (issue 8): batched ≥ 10× on the CPU.

The model is a focus-train checkpoint with the shapes of configs/tiny-clip.yaml (64×64 input, ViT
patch 8, 2 layers, width 64), saved with training.checkpoint.save_checkpoint and loaded with
load_checkpoint, as focus-eval does. The images are a generated UTKFace folder (200×200 JPEG
`.jpg.chip.jpg` files, docs/formats.md §6) read by the real reader for the `utkface-race` task.
Batched: DataLoader with `--workers` processes, batches of `--batch-size`, torch.no_grad.
Baseline: for each image, load → preprocess → encode_images(1 image) → score (text classifier
built once for both). The two paths must give the same scores.

Two ratios are printed. Per task: `utkface-race` alone, the issue's target. Per dataset: UTKFace's
two tasks (age, race) as focus-eval runs them, where the second task reuses the first one's image
embeddings (eval.zeroshot.EmbeddingCache), against the loop run once per task.

    .venv/bin/python benchmarks/eval.py [--images 2048] [--baseline-images 256] [--batch-size 64] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


import numpy as np
from PIL import Image

TARGET = 10.0


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


def tiny_checkpoint(run_dir: Path):
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    from focusclip.eval.tasks import all_tasks
    from focusclip.training.checkpoint import load_checkpoint, save_checkpoint
    from focusclip.training.model import FocusCLIP
    from focusclip.training.text import train_wordpiece

    prompts = [p for t in all_tasks() for row in t.prompts(True) for p in row]
    tok = train_wordpiece(prompts, vocab_size=1000)
    vit = ViTModel(ViTConfig(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=128), add_pooling_layer=False)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=256), add_pooling_layer=False)
    model = FocusCLIP(vit, bert, name="tiny-clip", embed_dim=64, triple=False, image_size=64, max_text_length=256)
    save_checkpoint(run_dir, 1, model, tok, "model: {name: tiny-clip}\n", {"step": 1, "epoch": 0})
    return load_checkpoint(run_dir, device="cpu")


def time_model_only(model, samples, batch_size: int) -> tuple[float, float]:
    """images/s of encode_images alone, one image per call vs batches (decoding excluded)."""
    import torch

    from focusclip.eval.readers import load_image

    torch.set_num_threads(1)
    pixels = torch.stack([model.preprocess(load_image(s.image)) for s in samples])   # [N, 3, S, S]
    rates = []
    for bs in (1, batch_size):
        t0 = time.perf_counter()
        for i in range(0, len(pixels), bs):
            model.encode_images(pixels[i:i + bs])
        rates.append(len(pixels) / (time.perf_counter() - t0))
    return rates[0], rates[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--baseline-images", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=None, help="default: focus-eval's default")
    args = ap.parse_args()

    import torch

    from focusclip.eval.readers import read_for_task
    from focusclip.eval.run import default_workers, task_samples
    from focusclip.eval.tasks import select_tasks
    from focusclip.eval.zeroshot import build_classifier, score_one_by_one, score_samples

    args.workers = default_workers() if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_utkface(tmp / "data", args.images)
        model = tiny_checkpoint(tmp / "run")
        task = select_tasks(["utkface-race"])[0]
        samples, _, _ = task_samples(task, read_for_task(task, tmp / "data"), None)
        classifier = build_classifier(model, task.prompts())           # [D, C], shared by both paths
        default_threads = torch.get_num_threads()
        score_one_by_one(model, samples[:8], classifier)                # warm-up
        t0 = time.perf_counter()
        batched, bad = score_samples(model, samples, classifier, batch_size=args.batch_size,
                                     workers=args.workers, device=torch.device("cpu"))
        t_batched = time.perf_counter() - t0
        base_samples = samples[: args.baseline_images]
        naive, t_naive = {}, {}
        for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
            torch.set_num_threads(threads)   # the loop's best thread count is its fair baseline
            t0 = time.perf_counter()
            naive[threads] = score_one_by_one(model, base_samples, classifier)
            t_naive[threads] = time.perf_counter() - t0
        model_only = time_model_only(model, base_samples, args.batch_size)
        torch.set_num_threads(default_threads)   # as for the batched run above
        t_dataset = time_dataset(model, tmp / "data", args)
    assert not bad, bad
    same = all(np.allclose(batched[: len(base_samples)], v, atol=1e-4) for v in naive.values())
    ips_batched = len(samples) / t_batched
    ips_naive = {th: len(base_samples) / t for th, t in t_naive.items()}
    ratio = ips_batched / max(ips_naive.values())
    print(f"model: {model.name} (64×64 ViT, 2 layers, width 64), {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"batched (batch {args.batch_size}, {args.workers} workers): {len(samples)} images in "
          f"{t_batched:.2f} s = {ips_batched:.0f} img/s")
    for th, ips in ips_naive.items():
        print(f"one at a time, {th} torch thread(s): {len(base_samples)} images in {t_naive[th]:.2f} s = "
              f"{ips:.0f} img/s")
    print(f"model alone (pixels ready, 1 thread): batch 1 {model_only[0]:.0f} img/s, batch "
          f"{args.batch_size} {model_only[1]:.0f} img/s ({model_only[1] / model_only[0]:.1f}x)")
    print(f"same scores on the common images: {same}")
    # the loop has no reuse: the dataset's two tasks cost it twice its per-task time
    ratio_dataset = (2 * len(samples) / t_dataset) / max(ips_naive.values())
    print(f"dataset (utkface-age + utkface-race, embeddings reused): {2 * len(samples)} image-tasks in "
          f"{t_dataset:.2f} s = {2 * len(samples) / t_dataset:.0f} img/s; ratio vs the loop {ratio_dataset:.1f}x")
    print(f"ratio per task vs the faster one-at-a-time loop: {ratio:.1f}x (target >= {TARGET:.0f}x) "
          f"{'OK' if ratio >= TARGET and same else 'MISSED'}")
    return 0 if ratio >= TARGET and same else 1


def time_dataset(model, data_root: Path, args) -> float:
    """Seconds to score UTKFace's two tasks in turn with one EmbeddingCache, as focus-eval does."""
    import torch

    from focusclip.eval.readers import read_for_task
    from focusclip.eval.run import task_samples
    from focusclip.eval.tasks import select_tasks
    from focusclip.eval.zeroshot import EmbeddingCache, build_classifier, score_samples

    cache, t0 = EmbeddingCache(), time.perf_counter()
    for task in select_tasks(["utkface-age", "utkface-race"]):
        samples, _, _ = task_samples(task, read_for_task(task, data_root), None)
        score_samples(model, samples, build_classifier(model, task.prompts()), batch_size=args.batch_size,
                      workers=args.workers, device=torch.device("cpu"), cache=cache)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
