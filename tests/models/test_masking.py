"""Each text token sees only the media the masking mode allows (Flamingo's p(y_l | y_<l, x_≤l)).

The masks act inside the cross-attention layers. In the full LM, causal self-attention still
carries media #1 to tokens after media #2 through the tokens in between (Flamingo §2.2 says the
same), so "after #2 ignores #1" is checked on the first gated block's output, where no
self-attention has mixed tokens yet; "before any media ignores all media" holds for the logits too.
"""

import torch

from heron.models import build_model

from .conftest import open_gates, random_frames, tiny_config

PROMPT = "intro text <image>about one<|endofchunk|><image>about two"


def _model(mode: str):
    cfg = tiny_config("llama")
    cfg.xattn.every_n_layers = 1  # a block before layer 0 reads raw token embeddings
    cfg.xattn.media_attention = mode
    model = build_model(cfg).eval()
    open_gates(model)
    return model


def _run(model, media):
    """(first gated block's output [L, D], logits [L, V], input_ids [L])."""
    captured = {}
    block = model.lm.model.layers[0].gated_cross_attn_layer
    handle = block.register_forward_hook(lambda mod, args, out: captured.update(out=out[0]))
    batch = model.prepare([PROMPT], [media])
    try:
        with torch.no_grad():
            logits = model(batch.input_ids, batch.attention_mask, batch.media).logits[0]
    finally:
        handle.remove()
    return captured["out"], logits, batch.input_ids[0]


def _spans(model, input_ids):
    first, second = (input_ids == model.image_token_id).nonzero().flatten().tolist()
    return slice(0, first), slice(first, second), slice(second, None)


def _changed(a, b) -> bool:
    return bool((a - b).abs().max() > 1e-3)


def test_immediate_media_only(rng):
    model = _model("immediate")
    first, second = random_frames(rng), random_frames(rng)
    base_block, base_logits, ids = _run(model, [first, second])
    block, logits, _ = _run(model, [random_frames(rng), second])  # only media #1 changed
    before, between, after = _spans(model, ids)
    torch.testing.assert_close(logits[before], base_logits[before], rtol=0, atol=0)
    assert _changed(block[between], base_block[between])
    assert _changed(logits[between], base_logits[between])
    torch.testing.assert_close(block[after], base_block[after], rtol=0, atol=1e-6)


def test_all_previous_media(rng):
    model = _model("all_previous")
    first, second = random_frames(rng), random_frames(rng)
    base_block, base_logits, ids = _run(model, [first, second])
    block, logits, _ = _run(model, [random_frames(rng), second])
    before, between, after = _spans(model, ids)
    torch.testing.assert_close(logits[before], base_logits[before], rtol=0, atol=0)
    assert _changed(block[between], base_block[between])
    assert _changed(block[after], base_block[after])  # media #1 is still visible after #2


def test_second_media_changes_only_what_follows_it(rng):
    model = _model("immediate")
    first = random_frames(rng)
    base_block, base_logits, ids = _run(model, [first, random_frames(rng)])
    block, logits, _ = _run(model, [first, random_frames(rng)])
    before, between, after = _spans(model, ids)
    torch.testing.assert_close(logits[between], base_logits[between], rtol=0, atol=0)
    assert _changed(block[after], base_block[after])
