"""Heron: a streaming video-and-text agent pipeline in the Flamingo style.

    import heron
    model = heron.load_model("tiny")
    latents = model.encode(frames)                       # uint8 [T, H, W, 3] -> [R, d]
    print(model.generate("<image>Question: what moves? Answer:", media=[latents]))
"""

from heron.config import ModelConfig, load_config
from heron.errors import HeronError
from heron.models import HeronModel, SamplingConfig, load_model, save_pretrained

__all__ = ["HeronError", "HeronModel", "ModelConfig", "SamplingConfig", "load_config", "load_model", "save_pretrained"]
__version__ = "0.1.0"
