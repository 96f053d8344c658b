"""The static-cache decode step (heron/models/graphs.py) on CPU: the same tokens as the dynamic loop.

On CPU the step runs eagerly over the same fixed buffers the CUDA graph records, so these tests
check the state logic (cache slots, mask, positions, media buffers, padded rows); tests/gpu/
checks the recorded graph itself.
"""

from __future__ import annotations

import pytest
import torch

from heron.config import ModelConfig
from heron.errors import ConfigError
from heron.models import SamplingConfig, build_model, graphs

from .conftest import open_gates, random_frames, tiny_config

PROMPTS = ["<image>Q: colour? A:", "a much longer preamble here <image> then <image> Q: count? A:", "no media Q:"]


def _static(model, batch, **kwargs) -> torch.Tensor:
    return torch.stack(list(graphs.decode_steps(model, batch, capture=False, **kwargs)), dim=1)


@pytest.fixture
def media(rng):
    return [[random_frames(rng)], [random_frames(rng), random_frames(rng, frames=3)], []]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_static_decoding_equals_the_dynamic_loop(arch, media):
    model = build_model(tiny_config(arch)).eval()
    open_gates(model, 0.5)
    batch = model.prepare(PROMPTS, media, max_new_tokens=16)
    expected = model.generate_ids(batch, max_new_tokens=16, stop_at_end_of_chunk=False)
    assert torch.equal(_static(model, batch, max_new_tokens=16, stop_at_end_of_chunk=False), expected)
    # a second request of another shape goes through the same bucket's buffers (3 rows -> 4)
    single = model.prepare(PROMPTS[:1], media[:1], max_new_tokens=16)
    alone = model.generate_ids(single, max_new_tokens=16, stop_at_end_of_chunk=False)
    assert torch.equal(_static(model, single, max_new_tokens=16, stop_at_end_of_chunk=False), alone)
    assert torch.equal(_static(model, batch, max_new_tokens=16, stop_at_end_of_chunk=False), expected)


def test_stopping_limits_and_seeded_sampling_match(media):
    model = build_model(tiny_config("llama")).eval()
    open_gates(model, 0.5)
    batch = model.prepare(PROMPTS, media, max_new_tokens=12)
    sampling = [SamplingConfig(do_sample=True, temperature=0.8, top_k=20, seed=7), SamplingConfig(), SamplingConfig()]
    kwargs = dict(max_new_tokens=[12, 3, 7], sampling=sampling)
    assert torch.equal(_static(model, batch, **kwargs), model.generate_ids(batch, **kwargs))


def test_the_media_buffers_are_read(media, monkeypatch):
    model = build_model(tiny_config("llama")).eval()
    open_gates(model, 2.0)
    batch = model.prepare(PROMPTS[:2], media[:2], max_new_tokens=16)
    expected = model.generate_ids(batch, max_new_tokens=16, stop_at_end_of_chunk=False)
    blind = graphs.StaticMediaRequest.mask
    monkeypatch.setattr(graphs.StaticMediaRequest, "mask", lambda self: torch.zeros_like(blind(self)))
    graphs._POOLS.clear()
    assert not torch.equal(_static(model, batch, max_new_tokens=16, stop_at_end_of_chunk=False), expected)


def test_graphs_are_only_wanted_on_cuda():
    model = build_model(tiny_config("gpt2")).eval()
    assert not graphs.graphs_wanted(model)  # CPU: the eager loop, unchanged
    assert ModelConfig().cuda_graphs == "auto" and ModelConfig(cuda_graphs="off").cuda_graphs == "off"
    with pytest.raises(ConfigError, match="cuda_graphs"):
        ModelConfig(cuda_graphs="always")


def test_linear_prefix_and_huge_batches_fall_back_to_the_eager_loop(rng):
    model = build_model(tiny_config("gpt2", connector="linear_prefix")).eval()
    batch = model.prepare(PROMPTS[:1], [[random_frames(rng)]], max_new_tokens=4)
    assert torch.equal(_static(model, batch, max_new_tokens=4), model.generate_ids(batch, max_new_tokens=4))
    assert graphs.graph_pool(model).get(graphs.ROW_BUCKETS[-1] + 1, 8, 8, capture=False) is None


def test_the_eager_fallback_turns_graphs_off_so_a_hook_cannot_recurse(rng, monkeypatch):
    model = build_model(tiny_config("gpt2", connector="linear_prefix")).eval()
    batch = model.prepare(PROMPTS[:1], [[random_frames(rng)]], max_new_tokens=2)
    seen = []
    real = type(model).decode_steps

    def hooked(self, *args, **kwargs):  # what the hook in HeronModel.decode_steps will ask
        seen.append(graphs.graphs_wanted(self))
        yield from real(self, *args, **kwargs)

    monkeypatch.setattr(graphs, "graphs_wanted", lambda m: not graphs._EAGER.get())
    monkeypatch.setattr(type(model), "decode_steps", hooked)
    list(graphs.decode_steps(model, batch, max_new_tokens=2, capture=False))
    assert seen == [False] and graphs.graphs_wanted(model)
