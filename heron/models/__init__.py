"""Language side: gated cross-attention, LM wrapping, the linear connector, the top-level model, loading.

Model code: never imports ray, redis, the state or the pipeline.
"""

from heron.models.building import apply_freezing
from heron.models.connector import LinearPrefixConnector, splice_media
from heron.models.heron_model import HeronModel, Prompts
from heron.models.lm import DECODER_LAYERS, CrossAttentionDecoderLayer, insert_cross_attention
from heron.models.loading import build_model, load_encoder, load_model, save_pretrained
from heron.models.media_state import MediaRequest, MediaState
from heron.models.sampling import SamplingConfig
from heron.models.xattn import GatedCrossAttentionBlock, MaskedCrossAttention

__all__ = [
    "DECODER_LAYERS",
    "CrossAttentionDecoderLayer",
    "GatedCrossAttentionBlock",
    "HeronModel",
    "LinearPrefixConnector",
    "MaskedCrossAttention",
    "MediaRequest",
    "MediaState",
    "Prompts",
    "SamplingConfig",
    "apply_freezing",
    "build_model",
    "insert_cross_attention",
    "load_encoder",
    "load_model",
    "save_pretrained",
    "splice_media",
]
