"""Heron: a streaming video-and-text agent pipeline in the Flamingo style.

    import heron
    model = heron.load_model("tiny")
    latents = model.encode(frames)                       # uint8 [T, H, W, 3] -> [R, d]
    print(model.generate("<image>Question: what moves? Answer:", media=[latents]))

Names are imported on first use, so ``import heron.errors`` (the CLI's error path) stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
_EXPORTS = {
    "HeronError": "heron.errors",
    "ModelConfig": "heron.config",
    "load_config": "heron.config",
    "HeronModel": "heron.models",
    "SamplingConfig": "heron.models",
    "load_model": "heron.models",
    "save_pretrained": "heron.models",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'heron' has no attribute {name!r}")
