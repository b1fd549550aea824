#!/usr/bin/env bash
# FocusCLIP training throughput on one GPU, within 4 minutes, in two parts:
#  1. focus-train's loop as it trains (benchmarks/train_input.py --loop): 512 MPII-size inputs (1280×720
#     JPEGs + heatmap PNGs) prepared once at 224 px (data.prepared), persistent pinned data workers,
#     the real step, the step numbers read every 10 steps. Prints samples/s, MFU, and the fraction of
#     each step spent waiting for data (target ≤ 5%: the GPU never waits for the input pipeline).
#  2. the step alone on synthetic batches: the paper's model (ViT-B/16 at 224 px, shared for the image
#     and heatmap-weighted views, + BERT-base, embed 512), bf16 autocast, SGD with momentum, the real
#     training step (training.steps.train_step: three views → NT-Xent over three pairs → backward →
#     clip 1.0 → step) at batch 32 (the paper's) and the largest batch that fits (doubling from 32 until
#     CUDA runs out of memory or the time budget ends): samples/s, peak memory and MFU.
#  3. fine-tuning a pretrained dual encoder (model.init; random weights of the same shapes, nothing is
#     downloaded): CLIP ViT-B/16 (openai/clip-vit-base-patch16; text 77 tokens, loss clip) and SigLIP 2
#     base (google/siglip2-base-patch16-224: SiglipModel, 256k-token vocabulary; text 64 tokens, loss
#     siglip), FocusCLIP's three views, AdamW, bf16: samples/s and peak memory at batch 32 and the
#     largest batch that fits (doubling, 60 s budget each). --dry-run: tiny shapes on the CPU.
#
# FLOP count (per sample, training = 3 × forward: forward + backward's two matmuls per forward one;
# a multiply-add is 2 FLOPs; layer norms, softmax, GELU, embeddings lookups and the loss ignored;
# benchmarks/train_input.py train_flops_per_sample):
#   encoder(n tokens, width d, FFN f, L layers) = L · (8·n·d² + 4·n²·d + 4·n·d·f)
#       8nd²: Q, K, V and output projections;  4n²d: QKᵀ and A·V;  4ndf: the two FFN matmuls
#   ViT-B/16 @224: n = 197, d = 768, f = 3072, L = 12, + patch embedding 2·196·(3·16²)·768  ≈ 35.1 GFLOP
#   BERT-base, T text tokens: encoder(T, 768, 3072, 12) (+ projection heads, ~0)    T = 256 → ≈ 45.9 GFLOP
#   FocusCLIP forward = 2 × ViT (image + masked image) + BERT;   train FLOPs/sample = 3 × forward
#   MFU = samples/s × train FLOPs/sample / peak bf16 dense FLOP/s (H100 SXM / H200: 989 TFLOP/s,
#   H100 PCIe: 756; others: pass --peak-tflops).
# Part 2's text is random token ids of a fixed length T (--text-len, default 256 ≈ a long pose
# description after dynamic padding); part 1 tokenises real-length descriptions (60–220 words).
#
# usage: benchmarks/gpu/train.sh [--dry-run] [--text-len 256] [--peak-tflops X] [--budget-s 200]
#   --dry-run: both parts with the tiny model on the CPU in fp32 (32 inputs at 64 px; batches 4 and 8)
#   to check the script without a GPU. Exit 1 when part 1 misses its target (not in a dry run).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1
DRY=0; PEAK=()
for ((i = 1; i <= $#; i++)); do
  [ "${!i}" = "--dry-run" ] && DRY=1
  if [ "${!i}" = "--peak-tflops" ]; then j=$((i + 1)); PEAK=(--peak-tflops "${!j}"); fi
done
if [ "$DRY" = 1 ]; then
  LOOP=(--loop --dry-run --device cpu --config configs/tiny-focusclip.yaml --size 64 --images 32 --batch-size 8
        --workers 2 --warmup 2 --steps 6)
else
  WORKERS=$(( $(nproc) > 10 ? 8 : ($(nproc) > 3 ? $(nproc) - 2 : 1) ))
  LOOP=(--loop --device cuda --images 512 --batch-size 32 --workers "$WORKERS" --warmup 10 --steps 60)
fi
LOOP_RC=0
timeout 150 "$PY" benchmarks/train_input.py "${LOOP[@]}" "${PEAK[@]}" || LOOP_RC=$?
timeout 240 "$PY" - "$@" <<'PYEOF'
import argparse, sys, time
import torch

sys.path.insert(0, "benchmarks")
from train_input import peak_tflops, train_flops_per_sample

from focusclip.training.config import load_config
from focusclip.training.dist import Dist
from focusclip.training.factory import build_model
from focusclip.training.loss import FocusLoss
from focusclip.training.optim import build_optimizer, build_scheduler
from focusclip.training.steps import make_amp, train_step

ap = argparse.ArgumentParser()
ap.add_argument("--dry-run", action="store_true")
ap.add_argument("--text-len", type=int, default=256)
ap.add_argument("--peak-tflops", type=float, default=None)
ap.add_argument("--budget-s", type=float, default=200.0)
args = ap.parse_args()
t_start = time.perf_counter()


class FakeTokenizer:                      # build_model needs only the vocabulary size and pad id
    pad_token_id = 0

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


if args.dry_run:
    device, config, sets, sizes = torch.device("cpu"), "configs/tiny-focusclip.yaml", ["train.precision=fp32"], [4, 8]
    text_len = min(args.text_len, 64)
else:
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --dry-run on a CPU")
    device, config, sizes = torch.device("cuda", 0), "configs/focusclip.yaml", None
    sets = ["train.precision=bf16", "model.vision.pretrained=null", "model.text.pretrained=null"]
    text_len = args.text_len
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
cfg = load_config(config, sets)
torch.manual_seed(0)
model = build_model(cfg, FakeTokenizer(cfg.model.text.vocab_size)).to(device)
amp = make_amp(device, cfg.train.precision)
opt = build_optimizer(model, cfg.optim)
sched = build_scheduler(opt, 10**9, cfg.optim)
loss_fn = FocusLoss(cfg.loss.kind, vars(cfg.loss.weights))
d = Dist(device=device)
flops, vit, bert = train_flops_per_sample(cfg, text_len)
name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
peak = peak_tflops(device, args.peak_tflops)
print(f"device: {name}; model: {cfg.model.name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params), "
      f"{cfg.train.image_size}px, text {text_len} tokens, precision {amp.precision}")
print(f"FLOPs/sample: ViT fwd {vit / 1e9:.2f} G, BERT fwd {bert / 1e9:.2f} G, train (3×fwd, 2 ViT views) {flops / 1e9:.1f} G")


def batch_of(n):
    s = cfg.train.image_size
    return {"pixels": torch.randn(n, 3, s, s, device=device),
            "heatmaps": torch.rand(n, s, s, device=device),
            "input_ids": torch.randint(1, cfg.model.text.vocab_size, (n, text_len), device=device),
            "attention_mask": torch.ones(n, text_len, dtype=torch.long, device=device)}


def measure(n, warmup=2, steps=4):
    """samples/s and peak memory (GiB) at batch n; None when it does not fit."""
    try:
        b = batch_of(n)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            train_step(model, model, loss_fn, opt, sched, [b], d, amp, 1.0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(model, model, loss_fn, opt, sched, [b], d, amp, 1.0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / steps
        mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        return n / dt, dt, mem
    except torch.cuda.OutOfMemoryError:
        return None
    except RuntimeError as e:             # cuBLAS/cuDNN report OOM as a plain RuntimeError
        if "out of memory" in str(e).lower() or "CUBLAS_STATUS_ALLOC_FAILED" in str(e):
            return None
        raise
    finally:
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def report(n, res):
    sps, dt, mem = res
    tflops = sps * flops / 1e12
    mfu = f"MFU {100 * tflops / peak:.1f}%" if peak else "MFU n/a (pass --peak-tflops)"
    print(f"batch {n:5d}: {sps:8.1f} samples/s  step {dt * 1e3:7.1f} ms  peak {mem:6.1f} GiB  "
          f"{tflops:7.1f} TFLOP/s  {mfu}", flush=True)


results = {}
for n in (sizes or [32, 64, 128, 256, 512, 1024, 2048, 4096]):
    if time.perf_counter() - t_start > args.budget_s:
        print(f"(time budget reached before batch {n})")
        break
    res = measure(n)
    if res is None:
        print(f"batch {n:5d}: out of memory")
        break
    results[n] = res
    report(n, res)
if not results:
    sys.exit("batch 32 does not fit")
largest = max(results)
print(f"summary: batch {min(results)} → {results[min(results)][0]:.1f} samples/s; largest batch that fits {largest} → "
      f"{results[largest][0]:.1f} samples/s ({time.perf_counter() - t_start:.0f} s in all)")
PYEOF
timeout 200 "$PY" - "$@" <<'PYEOF'
# part 3: fine-tuning CLIP ViT-B/16 and SigLIP base with FocusCLIP's three views (model.init's model class)
import sys, time
import torch
from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

from focusclip.training.config import OptimConfig
from focusclip.training.dist import Dist
from focusclip.training.loss import FocusLoss
from focusclip.training.model import FocusCLIPModel
from focusclip.training.optim import build_optimizer, build_scheduler
from focusclip.training.steps import make_amp, train_step

dry = "--dry-run" in sys.argv
device = torch.device("cpu") if dry else torch.device("cuda", 0)
if dry:
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cases = {"clip": (CLIPModel(CLIPConfig(text_config=dict(max_position_embeddings=77, **small),
                                           vision_config=dict(image_size=32, patch_size=16, **small), projection_dim=16)), 32, 77),
             "siglip": (SiglipModel(SiglipConfig(text_config=dict(max_position_embeddings=64, **small),
                                                 vision_config=dict(image_size=32, patch_size=16, **small))), 32, 64)}
    sizes, precision, budget = [4, 8], "fp32", 20
else:
    cases = {"clip": (CLIPModel(CLIPConfig(vision_config=dict(patch_size=16))), 224, 77),   # = openai/clip-vit-base-patch16
             "siglip": (SiglipModel(SiglipConfig(text_config=dict(vocab_size=256000))), 224, 64)}   # = google/siglip2-base-patch16-224
    sizes, precision, budget = [32, 64, 128, 256, 512, 1024], "bf16", 60
for kind, (dual, side, text_len) in cases.items():
    model = FocusCLIPModel.from_dual(dual, None, name=f"{kind}-ft", triple=True, image_size=side).to(device)
    amp = make_amp(device, precision)
    opt = build_optimizer(model, OptimConfig(name="adamw", lr=1e-5, weight_decay=0.1))
    sched = build_scheduler(opt, 10**9, OptimConfig())
    loss_fn = FocusLoss(kind, None)
    vocab = dual.config.text_config.vocab_size
    print(f"fine-tune {kind}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, {side}px, text {text_len}")
    t0 = time.perf_counter()
    for n in sizes:
        if time.perf_counter() - t0 > budget:
            print(f"  (time budget reached before batch {n})")
            break
        b = {"pixels": torch.randn(n, 3, side, side, device=device), "heatmaps": torch.rand(n, side, side, device=device),
             "input_ids": torch.randint(1, vocab, (n, text_len), device=device),
             "attention_mask": torch.ones(n, text_len, dtype=torch.long, device=device)}
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for _ in range(2):
                train_step(model, model, loss_fn, opt, sched, [b], Dist(device=device), amp, 1.0)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            for _ in range(3):
                train_step(model, model, loss_fn, opt, sched, [b], Dist(device=device), amp, 1.0)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = (time.perf_counter() - t1) / 3
        except torch.cuda.OutOfMemoryError:
            print(f"  batch {n:5d}: out of memory")
            break
        finally:
            opt.zero_grad(set_to_none=True)
        mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        print(f"  batch {n:5d}: {n / dt:8.1f} samples/s  step {dt * 1e3:7.1f} ms  peak {mem:6.1f} GiB", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    del model, opt, dual
PYEOF
exit $LOOP_RC
