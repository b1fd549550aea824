#!/usr/bin/env bash
# GPU benchmark for `focus-data heatmaps` (issue 3), about a minute on an H100 node, 3 minutes at most:
#   1. heatmaps/s for rendering only at 1280×720, batched on the GPU (target ≥ 20,000/s on an H100);
#   2. the whole command (in-process, 8,000 images, PNGs written) against PNG encoding alone on all of
#      this machine's cores (target: within 1.25×).
# Prints the figures and exits 1 when a target is missed.
#
#   bash benchmarks/gpu/heatmaps.sh                 # on the GPU machine
#   bash benchmarks/gpu/heatmaps.sh --cpu-dry-run   # anywhere: the same code path on CPU, small, no targets
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1

if [ "${1:-}" = "--cpu-dry-run" ]; then
  exec timeout 170 "$PY" benchmarks/heatmaps.py --suite gpu --device cpu --render-n 200 --command-n 200 \
    --rounds 1 --no-targets
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device visible to torch {torch.__version__} (use --cpu-dry-run on a CPU machine)")
PY
exec timeout 170 "$PY" benchmarks/heatmaps.py --suite gpu --device cuda --render-n 20000 --command-n 8000 --rounds 2
