"""Insert GATED XATTN-DENSE blocks into any Hugging Face causal LM by wrapping its decoder layers.

Wrap, don't patch (torchtune's FusionLayer): each chosen decoder layer is placed inside a
``CrossAttentionDecoderLayer`` that runs the gated block first and then the original layer.
State-dict hooks keep the LM's own weight names (``model.layers.3.self_attn...``), so HF
checkpoints load unchanged; the new weights appear as ``<layer>.gated_cross_attn_layer.*``,
OpenFlamingo's names.
"""

from __future__ import annotations

import operator

from torch import nn

from heron.config import CrossAttentionConfig
from heron.errors import UnsupportedArchitectureError
from heron.models.media_state import MediaState
from heron.models.xattn import GatedCrossAttentionBlock

# model_type -> dotted path of the decoder layer list. Add an LM here, or set
# `lm.decoder_layers_attr` in the config for one Heron does not know.
DECODER_LAYERS = {
    "gpt2": "transformer.h",
    "gptj": "transformer.h",
    "gpt_neox": "gpt_neox.layers",
    "opt": "model.decoder.layers",
    "llama": "model.layers",
    "mistral": "model.layers",
    "qwen2": "model.layers",
    "qwen3": "model.layers",
    "gemma": "model.layers",
    "phi": "model.layers",
    "phi3": "model.layers",
    "mpt": "transformer.blocks",
}

_INNER = "decoder_layer."


def decoder_layers_path(lm: nn.Module, override: str | None = None) -> str:
    """The dotted attribute path of ``lm``'s decoder layer ModuleList."""
    model_type = getattr(lm.config, "model_type", None)
    path = override or DECODER_LAYERS.get(model_type)
    if path is None:
        raise UnsupportedArchitectureError(
            f"Heron does not know where the decoder layers of a {model_type!r} model are; set "
            f"`lm.decoder_layers_attr` in the config (e.g. 'model.layers'). Known: {', '.join(sorted(DECODER_LAYERS))}"
        )
    try:
        layers = operator.attrgetter(path)(lm)
    except AttributeError:
        raise UnsupportedArchitectureError(
            f"`lm.decoder_layers_attr` = {path!r} does not exist on {type(lm).__name__}"
        ) from None
    if not isinstance(layers, nn.ModuleList):
        raise UnsupportedArchitectureError(f"{path!r} on {type(lm).__name__} is not an nn.ModuleList")
    return path


class CrossAttentionDecoderLayer(nn.Module):
    """A decoder layer preceded by a GATED XATTN-DENSE block that reads the request's media."""

    def __init__(self, decoder_layer: nn.Module, block: GatedCrossAttentionBlock, index: int, media: MediaState):
        super().__init__()
        self.decoder_layer = decoder_layer
        self.gated_cross_attn_layer = block
        self.index = index
        self._media = media  # shared, not a module: holds no tensors outside a request
        self.register_state_dict_post_hook(_drop_inner_prefix)
        self.register_load_state_dict_pre_hook(_add_inner_prefix)

    def __getattr__(self, name: str):
        # HF code sometimes reads attributes of its layers (e.g. `layer.attention_type`).
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["decoder_layer"], name)

    def forward(self, hidden_states, *args, **kwargs):
        request = self._media.current()
        if request is not None and request.media.shape[1] > 0:
            keys_values = request.keys_values(self.index, self.gated_cross_attn_layer.attn)
            hidden_states = self.gated_cross_attn_layer(hidden_states, keys_values, request.mask())
        else:
            hidden_states = self.gated_cross_attn_layer(hidden_states, None, None)
        return self.decoder_layer(hidden_states, *args, **kwargs)


def _drop_inner_prefix(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + _INNER)]:
        state_dict[prefix + key[len(prefix + _INNER) :]] = state_dict.pop(key)


def _add_inner_prefix(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    own = (prefix + "gated_cross_attn_layer.", prefix + _INNER)
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(own)]:
        state_dict[prefix + _INNER + key[len(prefix) :]] = state_dict.pop(key)


def insert_cross_attention(
    lm: nn.Module, cfg: CrossAttentionConfig, *, dim_visual: int, media: MediaState, layers_attr: str | None = None
) -> list[int]:
    """Wrap every ``cfg.every_n_layers``-th decoder layer of ``lm`` in place; returns their indices.

    As in OpenFlamingo, the block sits before layers n-1, 2n-1, … so the last layer always has one.
    """
    path = decoder_layers_path(lm, layers_attr)
    layers: nn.ModuleList = operator.attrgetter(path)(lm)
    dim = lm.config.hidden_size
    wrapped = []
    for i, layer in enumerate(layers):
        if (i + 1) % cfg.every_n_layers:
            continue
        block = GatedCrossAttentionBlock(
            dim=dim, dim_visual=dim_visual, heads=cfg.heads, head_dim=cfg.head_dim, ffw_mult=cfg.ffw_mult
        )
        layers[i] = CrossAttentionDecoderLayer(layer, block, i, media)
        wrapped.append(i)
    return wrapped
