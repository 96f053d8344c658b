"""Vision side: backbone wrapper, batched preprocessing, time embeddings, Perceiver Resampler."""

from heron.encoders.preprocess import PreprocessSettings, preprocess
from heron.encoders.resampler import PerceiverAttention, PerceiverResampler, feed_forward
from heron.encoders.time_embeddings import TimeEmbeddings
from heron.encoders.vision import VisionBackbone, build_vision_tower
from heron.encoders.visual_encoder import VisualEncoder

__all__ = [
    "PerceiverAttention",
    "PerceiverResampler",
    "PreprocessSettings",
    "TimeEmbeddings",
    "VisionBackbone",
    "VisualEncoder",
    "build_vision_tower",
    "feed_forward",
    "preprocess",
]
