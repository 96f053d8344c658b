"""Training: interleaved datasets, the Flamingo loss, the two-stage recipe, evaluation, tiny backbones.

    heron train configs/demo.yaml                   stage 1 (connector) then stage 2 (end to end)
    heron eval models/demo build/demo/data --ablate time-embeddings
    make demo-model                                 data + backbones + stages + eval from scratch

See docs/training.md. Names are imported on first use, so importing the package stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "RunConfig": "heron.train.config",
    "TrainConfig": "heron.train.config",
    "StageConfig": "heron.train.config",
    "DataConfig": "heron.train.config",
    "load_run_config": "heron.train.config",
    "InterleavedDataset": "heron.train.dataset",
    "InterleavedSample": "heron.train.dataset",
    "MediaLoader": "heron.train.dataset",
    "MediaRef": "heron.train.dataset",
    "read_samples": "heron.train.dataset",
    "tokenize_sample": "heron.train.dataset",
    "write_qa_samples": "heron.train.dataset",
    "flamingo_loss": "heron.train.loss",
    "warmup_cosine": "heron.train.schedule",
    "Trainer": "heron.train.trainer",
    "evaluate": "heron.train.evaluate",
    "time_embeddings_zeroed": "heron.train.evaluate",
    "build_demo_model": "heron.train.recipe",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'heron.train' has no attribute {name!r}")
