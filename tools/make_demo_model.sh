#!/usr/bin/env bash
# Rebuild models/demo from scratch: synthetic data, tiny backbones (contrastive vision tower, word-level
# LM), Heron stage 1 (connector) and stage 2 (end to end), then the test-split evaluation with the
# time-embedding ablation (models/demo/eval.json). Intermediate outputs go to build/demo/ (git-ignored);
# an interrupted build continues where it stopped. See docs/training.md for timings.
#
#   tools/make_demo_model.sh [--force] [--config configs/demo.yaml]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "$PY" -m heron demo-model "$@"
