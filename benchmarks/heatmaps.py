"""Benchmark the ROI heatmap renderer and `focus-data heatmaps` on 200 MPII-sized (1280×720) images.

People come from the five real MPII samples in ../shared/samples/mpii (cycled) when present, else from
generated skeletons. Three timings, each the best of `--rounds` interleaved rounds:
  literal  — a direct NumPy reading of docs/design.md §3.3: one full-grid float64 exp per part, part by part
             (timed on `--literal-n` images and extrapolated to all of them; the output says so);
  render   — data.heatmaps rendering only, float32 [B, H, W] in [0, 1], laid out as the command
             renders on this device (CPU: one thread per core, one torch thread each, small batches
             into a reused buffer; GPU: big batches), without quantizing, encoding or writing;
  command  — run_heatmaps in-process with --force: record reading, checks, rendering, uint8
             quantization, PNG encoding on all cores, atomic writes, report (interpreter start-up
             and imports excluded; the console script's wall time is printed beside it).
Targets (issue 3, 2-core CPU): render ≥ 100× faster than literal, command ≥ 20× faster than literal,
render ≤ ¼ of command. Exit 1 when one is missed.

    .venv/bin/python benchmarks/heatmaps.py [--images 200] [--literal-n 40] [--rounds 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("FOCUSCLIP_SHARED", REPO.parent / "shared")) / "samples" / "mpii"
H, W = 720, 1280
TARGETS = {"render_vs_literal": 100.0, "command_vs_literal": 20.0, "render_share": 0.25}
# docs/design.md §3.3, written out again so the baseline does not share a table with the code it checks.
PARTS = [[7, 8, 9, 12, 13], [6, 7, 12, 13, 2, 3], [13, 14, 7], [12, 11, 7], [14, 15, 13], [11, 10, 12],
         [3, 4, 6], [2, 1, 6], [4, 5, 3], [1, 0, 2]]


def literal_heatmap(people: list[dict], height: int, width: int) -> np.ndarray:
    """The baseline: full-grid float64, one exp over H×W per part per person."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    total = np.zeros((height, width))
    for p in people:
        kpts, vis = p["kpts"], p["kpts_vis"]
        for part in PARTS:
            pts = [(int(kpts[j][0]), int(kpts[j][1])) for j in part
                   if vis[j] > 0 and all(math.isfinite(c) and c >= 0 for c in kpts[j])]
            if len(pts) < 2:
                continue
            px, py = [q[0] for q in pts], [q[1] for q in pts]
            cx, cy = (min(px) + max(px)) // 2, (min(py) + max(py)) // 2
            sx, sy = max((max(px) - min(px)) // 2, 1), max((max(py) - min(py)) // 2, 1)
            total += np.exp(-((xs - cx) ** 2 / (2 * sx ** 2) + (ys - cy) ** 2 / (2 * sy ** 2)))
    return np.clip(total, 0, 1)


def sample_people() -> list[list[dict]] | None:
    """The shared samples' people (HRNet JSON, 1-based → 0-based), one list per image."""
    if not (SAMPLES / "test_mpii.json").is_file():
        return None
    by_image: dict[str, list] = {}
    for row in json.loads((SAMPLES / "test_mpii.json").read_text()):
        by_image.setdefault(row["image"], []).append(
            {"kpts": [[x - 1.0, y - 1.0] for x, y in row["joints"]], "kpts_vis": row["joints_vis"]})
    return list(by_image.values())


def generated_people(n: int, seed: int = 0) -> list[list[dict]]:
    """Plausible MPII-like people: 1–3 per image, a person box inside the frame, ~90% joints labelled."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        people = []
        for _ in range(int(rng.choice([1, 1, 2, 3]))):
            bh = rng.uniform(150, 650)
            x0, y0 = rng.uniform(0, W - 0.5 * bh), rng.uniform(0, H - bh)
            kpts = np.stack([x0 + rng.uniform(0, 0.5 * bh, 16), y0 + rng.uniform(0, bh, 16)], -1)
            vis = np.where(rng.random(16) < 0.9, 2, 0)
            people.append({"kpts": kpts.tolist(), "kpts_vis": vis.tolist()})
        images.append(people)
    return images


def make_dataset(folder: Path, people: list[list[dict]]) -> tuple[Path, Path]:
    """annotations.jsonl (sizes in the records, as convert writes them) and one 1280×720 JPEG per image."""
    import cv2

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    ok, jpg = cv2.imencode(".jpg", np.full((H, W, 3), 127, np.uint8))
    ann = folder / "annotations.jsonl"
    with open(ann, "w") as f:
        for i, ppl in enumerate(people):
            (images / f"{i:09d}.jpg").write_bytes(jpg.tobytes())
            f.write(json.dumps({"image": f"{i:09d}.jpg", "split": "train", "width": W, "height": H,
                                "people": [{"id": k, **p} for k, p in enumerate(ppl)]}) + "\n")
    return ann, images


def time_literal(people: list[list[dict]], n: int) -> float:
    """Seconds for all images, extrapolated from the first n."""
    t0 = time.perf_counter()
    for ppl in people[:n]:
        literal_heatmap(ppl, H, W)
    return (time.perf_counter() - t0) * len(people) / n


def time_render(people: list[list[dict]], device: str, workers: int) -> float:
    """Rendering only (float32 [B, H, W] in [0, 1]), laid out exactly as the command renders: on a
    CPU `workers` threads with one torch thread each and a reused buffer per thread, small batches;
    on a GPU big batches from the main thread. No quantization, encoding or writing."""
    import torch

    from focusclip.core.devices import cpu_threads, resolve_device
    from focusclip.data.heatmaps import people_arrays, render_padded
    from focusclip.pipeline.heatmaps.render import Item, batches, stack

    dev = resolve_device(device)
    items = [Item(f"{i}.jpg", Path("x"), Path("x"), *people_arrays(p), size=(H, W))
             for i, p in enumerate(people)]
    work = list(batches(items, dev.type))
    local = threading.local()

    def render(batch) -> None:
        (h, w), chunk = batch
        if getattr(local, "out", None) is None or local.out.shape[0] < len(chunk):
            local.out = torch.empty((len(chunk), h, w), dtype=torch.float32, device=dev)
        kpts, vis = stack(chunk)
        render_padded(kpts.to(dev), vis.to(dev), (h, w), out=local.out[: len(chunk)])

    if dev.type == "cpu":
        with cpu_threads(dev, os.cpu_count() or 1), ThreadPoolExecutor(workers) as pool:   # one torch thread each
            list(pool.map(render, work[:workers]))  # allocate each thread's buffer
            t0 = time.perf_counter()
            list(pool.map(render, work))
            return time.perf_counter() - t0
    render(work[0])
    _sync(dev)
    t0 = time.perf_counter()
    for batch in work:
        render(batch)
    _sync(dev)
    return time.perf_counter() - t0


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_command(ann: Path, images: Path, out: Path, device: str) -> float:
    from focusclip.pipeline.heatmaps.stage import run_heatmaps

    t0 = time.perf_counter()
    report = run_heatmaps(ann, images, out, device=device)
    assert report.counts["rendered"] == sum(1 for _ in open(ann)), report.counts
    return time.perf_counter() - t0


def time_encode(heatmaps: list[np.ndarray], n: int, workers: int) -> float:
    """PNG encoding alone (the command's encoder settings, no rendering or writing) of n heatmaps on
    `workers` threads: the floor the whole command is compared with."""
    import cv2

    from focusclip.pipeline.heatmaps.render import PNG_PARAMS

    def encode(rng: range) -> None:
        for i in rng:
            cv2.imencode(".png", heatmaps[i % len(heatmaps)], PNG_PARAMS)

    step = -(-n // workers)
    with ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(encode, [range(i, min(n, i + step)) for i in range(0, n, step)]))
        return time.perf_counter() - t0


def write_subset(ann: Path, n: int) -> Path:
    sub = ann.with_name(f"first{n}.jsonl")
    with open(ann) as f, open(sub, "w") as g:
        g.writelines(line for _, line in zip(range(n), f))
    return sub


def gpu_suite(args, people_for) -> int:
    """Rendering-only heatmaps/s at 1280×720 (target ≥ 20,000/s on an H100) and the whole command
    against PNG encoding alone on this machine's cores (target ≤ 1.25×)."""
    import torch

    from focusclip.core.devices import resolve_device
    from focusclip.data.heatmaps import render_heatmaps_batch, to_uint8

    dev = resolve_device(args.device)
    workers = len(os.sched_getaffinity(0))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (dry run)"
    print(f"device {dev} ({name}); {workers} cores; torch {torch.__version__}")
    people = people_for(args.render_n)
    time_render(people[: min(len(people), 512)], args.device, workers)  # warm-up: CUDA context, cuBLAS
    render_s = min(time_render(people, args.device, workers) for _ in range(args.rounds))
    rate = len(people) / render_s
    print(f"render only   : {len(people)} heatmaps in {render_s:.3f} s = {rate:,.0f} heatmaps/s")
    sample = to_uint8(render_heatmaps_batch(people[:64], (H, W), device=dev)).cpu().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        ann, images = make_dataset(Path(tmp), people_for(args.command_n))
        time_command(write_subset(ann, 256), images, Path(tmp) / "warm", args.device)
        cmd_s, enc_s = math.inf, math.inf
        for r in range(args.rounds):
            enc_s = min(enc_s, time_encode(list(sample), args.command_n, workers))
            cmd_s = min(cmd_s, time_command(ann, images, Path(tmp) / f"out{r}", args.device))
    ratio = cmd_s / enc_s
    print(f"PNG encoding alone ({workers} threads): {enc_s:.3f} s = {args.command_n / enc_s:,.0f} images/s")
    print(f"whole command (in-process)       : {cmd_s:.3f} s = {args.command_n / cmd_s:,.0f} images/s")
    print(f"(best of {args.rounds} rounds)")
    if args.no_targets:
        print(f"render {rate:,.0f}/s, command/encode {ratio:.2f}x (dry run: targets not checked)")
        return 0
    ok_render, ok_cmd = rate >= 20_000, ratio <= 1.25
    print(f"render heatmaps/s   : {rate:10,.0f}  target ≥ 20,000  {'OK' if ok_render else 'MISSED'}")
    print(f"command / encoding  : {ratio:10.2f}×  target ≤ 1.25   {'OK' if ok_cmd else 'MISSED'}")
    return 0 if ok_render and ok_cmd else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--literal-n", type=int, default=40, help="images the literal baseline really renders")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--suite", choices=["cpu", "gpu"], default="cpu",
                    help="gpu: render heatmaps/s and command vs PNG encoding (benchmarks/gpu/heatmaps.sh)")
    ap.add_argument("--render-n", type=int, default=20000, help="gpu suite: heatmaps rendered")
    ap.add_argument("--command-n", type=int, default=8000, help="gpu suite: images through the command")
    ap.add_argument("--no-targets", action="store_true", help="print only (a CPU dry run of the gpu suite)")
    args = ap.parse_args()
    samples = sample_people()
    source = "the 5 shared MPII samples, cycled" if samples else "generated people"

    def people_for(n: int) -> list[list[dict]]:
        pool = samples or generated_people(n)
        return [pool[i % len(pool)] for i in range(n)]

    if args.suite == "gpu":
        print(f"people from {source}")
        return gpu_suite(args, people_for)
    people = people_for(args.images)
    lit_n = min(args.literal_n, args.images)
    workers = len(os.sched_getaffinity(0))  # the command's default pool size
    print(f"{args.images} images at {W}x{H} from {source}; {sum(map(len, people))} people; "
          f"device {args.device}; {workers} cores (the command's worker threads)")
    best = {k: (math.inf, math.inf) for k in ("literal", "render", "command")}  # (wall, CPU) seconds
    with tempfile.TemporaryDirectory() as tmp:
        ann, images = make_dataset(Path(tmp), people)
        time_command(ann, images, Path(tmp) / "warm", args.device)  # warm-up: imports, allocator
        for r in range(args.rounds):
            # A fresh output folder each round, as a first run: --force over existing files would add
            # the file system's flush-on-replace (ext4 auto_da_alloc), which is not rendering work.
            runs = {"literal": (time_literal, people, lit_n),
                    "render": (time_render, people, args.device, workers),
                    "command": (time_command, ann, images, Path(tmp) / f"out{r}", args.device)}
            for key, (fn, *fn_args) in runs.items():
                c0 = time.process_time()
                wall = fn(*fn_args)
                cpu = (time.process_time() - c0) * (len(people) / lit_n if key == "literal" else 1)
                best[key] = min(best[key], (wall, cpu))
        cli = [str(REPO / ".venv" / "bin" / "focus-data"), "heatmaps", str(ann), "--images", str(images),
               "-o", str(Path(tmp) / "cli"), "--device", args.device]
        t0 = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        cli_s = time.perf_counter() - t0
    return report(best, args, lit_n, cli_s)


def report(best: dict, args, lit_n: int, cli_s: float) -> int:
    n = args.images
    wall = {k: v[0] for k, v in best.items()}
    ratios = {"render_vs_literal": wall["literal"] / wall["render"],
              "command_vs_literal": wall["literal"] / wall["command"],
              "render_share": wall["render"] / wall["command"]}
    note = f"; measured on {lit_n}, extrapolated to {n}" if lit_n < n else ""
    for key, label in (("literal", "literal NumPy"), ("render", "render only"), ("command", "whole command")):
        w, c = best[key]
        print(f"{label:14s}: {w:8.3f} s  {1e3 * w / n:7.2f} ms/image  (CPU {c:7.3f} s, all threads{note if key == 'literal' else ''})")
    print(f"console script incl. interpreter start-up and imports: {cli_s:.2f} s")
    print(f"(best of {args.rounds} interleaved rounds; load average now {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores: a busy machine slows the threaded command most)")
    ok = True
    for key, value in ratios.items():
        target = TARGETS[key]
        met = value <= target if key == "render_share" else value >= target
        ok &= met
        sign, unit = ("≤", "") if key == "render_share" else ("≥", "×")
        print(f"{key:20s}: {value:8.2f}{unit}  target {sign} {target}  {'OK' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
