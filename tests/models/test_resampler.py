"""Perceiver Resampler and time embeddings: fixed R tokens, order carried by time embeddings only."""

import pytest
import torch

from heron.config import ResamplerConfig
from heron.errors import ConfigError
from heron.encoders import PerceiverResampler, TimeEmbeddings
from heron.encoders.visual_encoder import span_frames
from heron.models import build_model

from .conftest import tiny_config


def _encoder(max_frames=8, dim=16):
    torch.manual_seed(0)
    time = TimeEmbeddings(max_frames=max_frames, dim=dim)
    resampler = PerceiverResampler(dim=dim, depth=2, heads=2, head_dim=8, num_latents=5, ffw_mult=2)

    def encode(features):  # [B, T, S, d] -> [B, R, d]
        return resampler(time(features).flatten(1, 2))

    return time, encode


@pytest.mark.parametrize("frames", [1, 8, 30])
@pytest.mark.parametrize("spatial", [4, 49])
def test_output_shape_is_fixed(frames, spatial):
    _, encode = _encoder()
    out = encode(torch.randn(3, frames, spatial, 16))
    assert out.shape == (3, 5, 16)
    assert torch.isfinite(out).all()


def test_frame_order_matters_only_through_time_embeddings():
    time, encode = _encoder()
    features = torch.randn(2, 8, 6, 16)
    reversed_ = features.flip(1)
    with torch.no_grad():
        assert (encode(features) - encode(reversed_)).abs().max() > 1e-3
        time.embeddings.zero_()
        torch.testing.assert_close(encode(features), encode(reversed_), rtol=1e-5, atol=1e-5)


def test_longer_windows_interpolate_time_embeddings():
    time = TimeEmbeddings(max_frames=8, dim=4)
    x = torch.zeros(1, 30, 1, 4)
    with torch.no_grad():
        out = time(x)[0, :, 0]  # [30, 4]
        table = time.embeddings[:, 0]  # [8, 4]
    torch.testing.assert_close(out[0], table[0])  # ends are kept
    torch.testing.assert_close(out[-1], table[-1])
    # 30 frames over 8 anchors: frame 2 lies 2*7/29 of the way, between anchors 0 and 1
    w = 2 * 7 / 29
    torch.testing.assert_close(out[2], table[0] * (1 - w) + table[1] * w)


def test_model_encode_gives_r_tokens_for_any_window(rng):
    model = build_model(tiny_config("gpt2"))
    for frames in (1, 4, 9):
        window = rng.integers(0, 256, size=(frames, 20, 28, 3), dtype="uint8")
        assert model.encode(window).shape == (3, 24)
    assert model.encode(rng.integers(0, 256, size=(2, 4, 16, 16, 3), dtype="uint8")).shape == (2, 3, 24)


def test_resampler_depth_and_sizes_come_from_config():
    cfg = tiny_config("gpt2", resampler=ResamplerConfig(depth=3, heads=4, head_dim=4, num_latents=7, ffw_mult=3, max_frames=2))
    model = build_model(cfg)
    resampler = model.encoder.resampler
    assert len(resampler.layers) == 3 and resampler.latents.shape == (7, 24)
    assert resampler.layers[0][0].to_q.out_features == 16 and resampler.layers[0][1][1].out_features == 72
    assert model.encoder.time_embeddings.embeddings.shape == (2, 1, 24)


def _span_encoder(spans: list[int], num_latents: int = 6):
    cfg = tiny_config("gpt2", resampler=ResamplerConfig(depth=2, heads=2, head_dim=8, num_latents=num_latents,
                                                        ffw_mult=2, max_frames=8, time_spans=spans))
    return build_model(cfg).encoder


@pytest.mark.parametrize("frames", [1, 3, 8, 10])
def test_time_spans_keep_r_tokens_for_any_window(frames):
    encoder = _span_encoder(spans=[1, 2])
    assert encoder.num_latents == 6 and encoder.resampler.latents.shape == (2, 24)
    with torch.no_grad():
        out = encoder.resample(torch.randn(2, frames, 5, 24))
    assert out.shape == (2, 6, 24) and torch.isfinite(out).all()


def test_level_one_is_flamingo_and_each_span_summarises_only_its_own_frames():
    encoder = _span_encoder(spans=[1, 2])  # tokens: [whole window x2 | first half x2 | second half x2]
    features = torch.randn(1, 8, 5, 24)
    changed = features.clone()
    changed[:, 4:] = torch.randn(1, 4, 5, 24)  # only the second half's frames
    with torch.no_grad():
        before, after = encoder.resample(features), encoder.resample(changed)  # [1, 6, 24]
        flamingo = encoder.resampler(encoder.time_embeddings(features).flatten(1, 2))  # [1, 2, 24]
    torch.testing.assert_close(before[:, :2], flamingo)
    torch.testing.assert_close(before[:, 2:4], after[:, 2:4])  # the first half's tokens: untouched
    assert (before[:, 4:] - after[:, 4:]).abs().max() > 1e-3
    assert (before[:, :2] - after[:, :2]).abs().max() > 1e-3  # the whole window saw the change


def test_with_time_spans_order_still_lives_only_in_time_embeddings():
    """Reversed frames give the same tokens with the span blocks swapped once time embeddings are
    zeroed: the LM's cross-attention has no positions over media tokens, so it cannot tell them apart."""
    encoder = _span_encoder(spans=[1, 2])
    features = torch.randn(2, 8, 5, 24)
    swap_halves = lambda x: torch.cat([x[:, :2], x[:, 4:], x[:, 2:4]], dim=1)  # noqa: E731
    with torch.no_grad():
        encoder.time_embeddings.embeddings.normal_()
        forward, backward = encoder.resample(features), encoder.resample(features.flip(1))
        assert (forward - swap_halves(backward)).abs().max() > 1e-3
        encoder.time_embeddings.embeddings.zero_()
        forward, backward = encoder.resample(features), encoder.resample(features.flip(1))
    torch.testing.assert_close(forward, swap_halves(backward), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spans", [[], [0], [4], [1, 2, 1], ["2"], [1.0]])
def test_time_span_levels_must_divide_the_latents(spans):
    with pytest.raises(ConfigError, match="time_spans"):
        ResamplerConfig(num_latents=6, time_spans=spans)


def test_span_frames_cover_every_frame_in_order():
    assert span_frames(16, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert span_frames(10, 4).tolist() == [[0, 1, 2], [2, 3, 4], [5, 6, 7], [7, 8, 9]]  # overlapping runs
    assert span_frames(1, 3).tolist() == [[0], [0], [0]]  # an image: every span sees it
    assert span_frames(5, 1).tolist() == [[0, 1, 2, 3, 4]]
