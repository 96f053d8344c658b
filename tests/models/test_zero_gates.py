"""With gates at zero the wrapped LM computes exactly the original LM's function."""

import copy
import operator

import pytest
import torch

from heron.models import build_model
from heron.models.lm import CrossAttentionDecoderLayer, decoder_layers_path

from .conftest import LM_FAMILIES, random_frames, tiny_config

TEXT = "<image>A red square moves left.<|endofchunk|><image>Then a circle appears"


@pytest.mark.parametrize("arch", sorted(LM_FAMILIES))
def test_zero_gates_keep_the_lm_intact(arch, rng):
    model = build_model(tiny_config(arch)).eval()
    assert model.xattn_layer_indices == [1, 3]  # every 2nd layer, OpenFlamingo's placement
    # The reference is the same LM unwrapped: rebuild it from the wrapped layers' inner modules.
    original = copy.deepcopy(model.lm)
    container = _decoder_list(original)
    for i, layer in enumerate(container):
        if isinstance(layer, CrossAttentionDecoderLayer):
            container[i] = layer.decoder_layer
    assert not any(isinstance(m, CrossAttentionDecoderLayer) for m in original.modules())

    batch = model.prepare([TEXT], [[random_frames(rng), random_frames(rng)]])
    with torch.no_grad():
        expected = original(input_ids=batch.input_ids).logits
        with_media = model(batch.input_ids, batch.attention_mask, batch.media).logits
        without_media = model(batch.input_ids, batch.attention_mask).logits
    torch.testing.assert_close(with_media, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(without_media, expected, rtol=0, atol=1e-5)


def _decoder_list(lm):
    return operator.attrgetter(decoder_layers_path(lm))(lm)


def test_lm_weight_names_are_kept(rng):
    """Wrapping keeps the LM's own state-dict keys, so HF checkpoints load unchanged."""
    model = build_model(tiny_config("llama"))
    keys = set(model.lm.state_dict())
    assert "model.layers.1.self_attn.q_proj.weight" in keys
    assert "model.layers.1.gated_cross_attn_layer.attn.to_kv.weight" in keys
    assert not any(".decoder_layer." in k for k in keys)
    # and loading a state dict with the LM's own names works strictly
    model.lm.load_state_dict(model.lm.state_dict(), strict=True)
