# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export RAY_AUTH_MODE ?= disabled
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo demo-model lint test test-fast bench bench-gpu clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	# torch first, pinned: on the project's machines this exact build is served from local disk
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e '.[test]'
	# ffmpeg and GStreamer's RTSP server, for the live-stream tests' servers (Debian packages; idempotent)
	bash tools/setup_system.sh || echo "WARNING: tools/setup_system.sh failed: the live-stream server tests will skip"
	touch $(STAMP)

setup: $(STAMP)

## demo: make a sample video and ask Heron about it, end to end (Ray actors, embedded Redis)
demo: setup
	$(PY) -m heron.demo

## demo-model: rebuild models/demo from scratch (synthetic data, tiny backbones, two stages, eval); docs/training.md
demo-model: setup
	PY=$(PY) tools/make_demo_model.sh

## lint: the layers contract (import-linter), ruff lint and ruff format check
lint: setup
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## test: lint, then every test that can run here; a throw-away Redis and one local Ray are started by the test session
test: lint
	$(PY) -m pytest -q -p no:cacheprovider

## test-fast: unit tests only (no Ray, no Redis)
test-fast: setup
	$(PY) -m pytest -q -m "not integration"

## bench: every benchmark side by side on this machine (bench-cpu preset, ~4 min on 2 cores); see bench/RESULTS.md
bench: setup
	$(PY) bench/run_all.py

## bench-gpu: the same with real-size backbones on one GPU (bench-gpu preset, < 8 min)
bench-gpu: setup
	PY=$(PY) bench/gpu.sh

clean:
	rm -rf $(VENV) .pytest_cache
