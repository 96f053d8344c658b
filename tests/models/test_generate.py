"""Generation: caches change nothing but speed; media keys/values are computed once per request."""

import threading

import pytest
import torch

from heron.models import SamplingConfig, build_model

from .conftest import open_gates, random_frames, tiny_config

PROMPT = "<image>Question: what is shown? Answer:"


def _uncached_greedy(model, prompt, media, steps):
    """Reference: re-run the whole sequence through the model at every step, no caches at all."""
    batch = model.prepare([prompt], [media])
    ids, mask, out = batch.input_ids, batch.attention_mask, []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(ids, mask, batch.media).logits[0, -1]
            logits[[model.image_token_id, model.tokenizer.pad_token_id]] = -float("inf")
            token = int(logits.argmax())
            out.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
    return out


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "opt"])
def test_cached_greedy_equals_uncached(arch, rng):
    model = build_model(tiny_config(arch)).eval()
    open_gates(model, 0.5)
    media = [random_frames(rng)]
    batch = model.prepare([PROMPT], [media], max_new_tokens=12)
    cached = model.generate_ids(batch, max_new_tokens=12, stop_at_end_of_chunk=False)[0].tolist()
    assert cached == _uncached_greedy(model, PROMPT, media, len(cached))
    assert len(cached) >= 2


def test_media_keys_values_computed_once_per_request(rng):
    model = build_model(tiny_config("llama")).eval()
    open_gates(model, 0.5)
    calls = []
    blocks = [m for n, m in model.named_modules() if n.endswith("gated_cross_attn_layer")]
    handles = [b.attn.to_kv.register_forward_hook(lambda *a: calls.append(1)) for b in blocks]
    try:
        tokens = model.generate_ids(
            model.prepare([PROMPT], [[random_frames(rng)]], max_new_tokens=10),
            max_new_tokens=10,
            stop_at_end_of_chunk=False,
        )
    finally:
        for h in handles:
            h.remove()
    assert tokens.shape[1] == 10  # ten decoding steps ...
    assert len(calls) == len(blocks) == 2  # ... and one keys/values projection per layer in all


def test_batched_generation_with_padding_equals_one_by_one(rng):
    model = build_model(tiny_config("llama")).eval()
    open_gates(model, 0.5)
    prompts = ["<image>Q: colour? A:", "a much longer preamble here <image> then <image> Q: count? A:"]
    media = [[random_frames(rng)], [random_frames(rng), random_frames(rng, frames=3)]]
    together = model.generate(prompts, media, max_new_tokens=8, stop_at_end_of_chunk=False)
    alone = [model.generate(p, m, max_new_tokens=8, stop_at_end_of_chunk=False) for p, m in zip(prompts, media)]
    assert together == alone


def test_sampling_is_reproducible_by_seed_and_differs_from_greedy(rng):
    model = build_model(tiny_config("gpt2")).eval()
    media = [random_frames(rng)]
    hot = SamplingConfig(do_sample=True, temperature=5.0, seed=7)
    a = model.generate(PROMPT, media, max_new_tokens=16, sampling=hot, stop_at_end_of_chunk=False)
    b = model.generate(PROMPT, media, max_new_tokens=16, sampling=hot, stop_at_end_of_chunk=False)
    greedy = model.generate(PROMPT, media, max_new_tokens=16, stop_at_end_of_chunk=False)
    assert a == b and a != greedy


def test_stops_at_end_of_chunk(rng):
    model = build_model(tiny_config("gpt2")).eval()
    # make <|endofchunk|> the most likely next token everywhere
    bias = torch.zeros(len(model.tokenizer))
    bias[model.end_of_chunk_token_id] = 1e4
    model.lm.lm_head.register_forward_hook(lambda m, a, out: out + bias)
    batch = model.prepare([PROMPT], [[random_frames(rng)]], max_new_tokens=5)
    tokens = model.generate_ids(batch, max_new_tokens=5)
    assert tokens.tolist() == [[model.end_of_chunk_token_id]]
    assert model.generate(PROMPT, [random_frames(rng)], max_new_tokens=5) == ""


def test_concurrent_requests_never_share_media(rng):
    model = build_model(tiny_config("llama")).eval()
    open_gates(model, 1.0)
    torch.manual_seed(0)  # strong, distinct latents so that a mix-up would show in the answers
    batches = [model.prepare([PROMPT], [[torch.randn(3, 24) * 10]], max_new_tokens=10) for _ in range(4)]

    def answer(batch):
        return model.generate_ids(batch, max_new_tokens=10, stop_at_end_of_chunk=False).tolist()

    expected = [answer(b) for b in batches]
    assert len({str(e) for e in expected}) == 4
    results = [None] * 8
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        results[i] = answer(batches[i % 4])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected * 2
    assert model.media_state.current() is None  # nothing left behind


def test_media_is_cleared_after_an_error(rng):
    model = build_model(tiny_config("gpt2")).eval()
    with pytest.raises(RuntimeError):
        with model.media_state.use(model._request(torch.zeros(1, 1, 3, 24), torch.ones(1, 1, 3, dtype=torch.bool))):
            raise RuntimeError("boom")
    assert model.media_state.current() is None


def test_cached_latents_give_the_same_answer_as_frames(rng):
    model = build_model(tiny_config("gpt2")).eval()
    open_gates(model, 0.5)
    frames = random_frames(rng, frames=4)
    latents = model.encode(frames)
    assert model.generate(PROMPT, [frames], max_new_tokens=6) == model.generate(PROMPT, [latents], max_new_tokens=6)


def test_items_of_several_windows_are_masked_not_padded_into_attention():
    """A media item may be several windows' latents concatenated ([k*R, d]); the zero padding
    that lets it share a batch with a shorter item must be invisible to the shorter one."""
    model = build_model(tiny_config("llama")).eval()
    open_gates(model, 1.0)
    torch.manual_seed(0)
    one_window, three_windows = torch.randn(3, 24), torch.randn(9, 24)
    prompts = ["<image>Q: what? A:", "<image>Q: and what? A:"]
    batch = model.prepare(prompts, [[one_window], [three_windows]])
    assert batch.media.shape == (2, 1, 9, 24) and batch.media_mask.sum().item() == 12
    with torch.no_grad():
        together = model(batch.input_ids, batch.attention_mask, batch.media, media_mask=batch.media_mask).logits[:, -1]
        for row, item in enumerate([one_window, three_windows]):
            alone = model.prepare(prompts[row : row + 1], [[item]])
            logits = model(alone.input_ids, alone.attention_mask, alone.media, media_mask=alone.media_mask).logits[
                0, -1
            ]
            torch.testing.assert_close(together[row], logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_from_config_runs_end_to_end(dtype, rng):
    """What GPUs use (bf16/fp16) flows from the config to every part, tokens included."""
    cfg = tiny_config("llama")
    cfg.dtype = dtype
    from heron.models import load_model

    model = load_model(cfg, trainable="none")
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
    assert model.encode(random_frames(rng)).dtype == getattr(torch, dtype)
    batch = model.prepare([PROMPT], [[random_frames(rng)]], max_new_tokens=4)
    assert model.generate_ids(batch, max_new_tokens=4, stop_at_end_of_chunk=False).shape == (1, 4)
