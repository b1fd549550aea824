"""Training throughput of the tiny FocusCLIP: dynamic padding (to the longest text of each batch)
against padding every text to 512 tokens, measured in the same run, and the peak memory of each.

Descriptions are generated with the length of real LLM pose descriptions (60–220 words). Each
timed step is the real one: collate (tokenize + pad) → forward of the three views → NT-Xent over
the three pairs → backward → clip → optimizer step (`training.steps.train_step`). The two padding
modes alternate round by round so a busy machine slows both alike; samples/s is reported on CPU
time (robust to other processes) and wall time. Peak memory: CUDA max allocated on a GPU, else the
process's peak RSS (ru_maxrss) after a first pass of each mode (dynamic first, which also warms up).
Exit 1 when dynamic padding is not faster than padding to 512.

    .venv/bin/python benchmarks/train.py [--config configs/tiny-focusclip.yaml] [--batch-size 16]
        [--steps 6] [--rounds 3] [--threads 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

import torch

from focusclip.training.config import load_config
from focusclip.training.data import Collate
from focusclip.training.dist import Dist
from focusclip.training.factory import build_model
from focusclip.training.loss import FocusLoss
from focusclip.training.optim import build_optimizer, build_scheduler
from focusclip.training.steps import make_amp, train_step
from focusclip.training.text import train_wordpiece

ROOT = Path(__file__).resolve().parents[1]

WORDS = ("the person is standing sitting with left right arm leg raised bent straight knee elbow hand "
         "foot head torso slightly forward backward near shoulder hip wrist ankle holding looking towards "
         "camera ground while walking running playing curling dancing of a an on in at and").split()


def descriptions(n: int, rng: random.Random) -> list[str]:
    """Texts as long as real LLM descriptions (60–220 words)."""
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 220))) + "." for _ in range(n)]


def make_samples(texts: list[str], size: int, triple: bool, g: torch.Generator) -> list[dict]:
    out = []
    for t in texts:
        s = {"pixels": torch.randn(3, size, size, generator=g), "text": t, "image": "x", "skipped": []}
        if triple:
            s["heatmap"] = torch.rand(size, size, generator=g)
        out.append(s)
    return out


def run_mode(model, loss_fn, opt, sched, collate, batches, d, amp) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, tokens per text) for one pass over `batches`."""
    c0, w0, tokens = time.process_time(), time.perf_counter(), 0
    for samples in batches:
        batch = collate(samples)
        tokens += batch["input_ids"].shape[1]
        train_step(model, model, loss_fn, opt, sched, [batch], d, amp, 1.0)
    if d.device.type == "cuda":
        torch.cuda.synchronize()
    return time.process_time() - c0, time.perf_counter() - w0, tokens // max(1, len(batches))


def peak_memory(fn, device: torch.device) -> float:
    """MiB: CUDA max allocated during fn(), or the process's peak RSS after fn() (monotonic: the
    pad-512 pass runs second, so its figure includes the dynamic one's and shows the growth)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        fn()
        return torch.cuda.max_memory_allocated() / 2**20
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs/tiny-focusclip.yaml"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6, help="steps per mode per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, ["data.max_text_length=512", "model.text.vocab_size=2000"])
    rng, g = random.Random(0), torch.Generator().manual_seed(0)
    tok = train_wordpiece(descriptions(300, rng), cfg.model.text.vocab_size)
    torch.manual_seed(0)
    model = build_model(cfg, tok).to(args.device)
    d = Dist(device=torch.device(args.device))
    amp = make_amp(d.device, cfg.train.precision)
    opt = build_optimizer(model, cfg.optim)
    sched = build_scheduler(opt, 10**9, cfg.optim)
    loss_fn = FocusLoss(cfg.loss.kind, vars(cfg.loss.weights))
    collates = {"dynamic": Collate(tok, 512, "longest"), "pad512": Collate(tok, 512, "max_length")}
    size, bs = cfg.train.image_size, args.batch_size
    batches = [make_samples(descriptions(bs, rng), size, cfg.model.triple, g) for _ in range(args.steps)]

    def one(mode):
        return run_mode(model, loss_fn, opt, sched, collates[mode], batches, d, amp)

    peaks = {m: peak_memory(lambda m=m: one(m), d.device) for m in ("dynamic", "pad512")}
    cpu = {m: 0.0 for m in collates}
    wall = {m: 0.0 for m in collates}
    tokens = {}
    for _ in range(args.rounds):
        for m in collates:
            c, w, tokens[m] = one(m)
            cpu[m] += c
            wall[m] += w
    n = args.rounds * args.steps * bs
    print(f"tiny FocusCLIP ({cfg.train.image_size}px, batch {bs}, {args.threads} thread(s), {args.device}); "
          f"{n} samples per mode")
    for m in collates:
        print(f"  {m:8s} {tokens[m]:4d} tokens/text   {n / cpu[m]:8.1f} samples/s (CPU time)   "
              f"{n / wall[m]:8.1f} samples/s (wall)   peak {'CUDA' if d.device.type == 'cuda' else 'RSS'} "
          f"{peaks[m]:.0f} MiB")
    ratio = cpu["pad512"] / cpu["dynamic"]
    print(f"dynamic padding / pad-to-512 throughput: {ratio:.2f}x (CPU time), "
          f"{wall['pad512'] / wall['dynamic']:.2f}x (wall)")
    return 0 if ratio > 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
