#!/usr/bin/env bash
# Build the reference OpenFlamingo (open-flamingo 2.0.1) in its own virtual environment.
#
# The reference pins torch 2.0.1 and transformers 4.33, which cannot live in Heron's venv, so it
# gets one of its own, OUTSIDE the repository (never commit it). ~4.6 GB, a few minutes.
#
#   tools/openflamingo_parity/build_reference_venv.sh [VENV_DIR]    # default /work/ofref-venv
#
# Then: VENV_DIR/bin/python tools/openflamingo_parity/make_fixture.py
set -euo pipefail

VENV="${1:-${OFREF_VENV:-/work/ofref-venv}}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
case "$(realpath -m "$VENV")/" in
  "$REPO"/*) echo "refusing to build the reference venv inside the repository ($REPO)" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -U pip
fi
# The pins that make open-flamingo 2.0.1 import and run offline (see shared/ENV.md).
"$VENV/bin/pip" install -q open-flamingo==2.0.1
"$VENV/bin/pip" install -q "numpy<2" transformers==4.33.3 open-clip-torch==2.20.0 timm==0.9.16 \
  "tokenizers<0.14" "huggingface-hub<0.20" safetensors
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
import open_flamingo, open_clip, torch, transformers  # noqa: F401  (fails here if the pins do not fit)
print("reference venv ok:", ", ".join(f"{p} {version(p)}" for p in
      ("open-flamingo", "torch", "transformers", "open-clip-torch", "tokenizers")))
PY
