"""Perceiver Resampler and time embeddings: fixed R tokens, order carried by time embeddings only."""

import pytest
import torch

from heron.config import ResamplerConfig
from heron.encoders import PerceiverResampler, TimeEmbeddings
from heron.encoders.resampler import PerceiverAttention
from heron.encoders.spatial_values import SpatialValues
from heron.encoders.visual_encoder import span_frames
from heron.errors import ConfigError, FrameFormatError
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
    cfg = tiny_config(
        "gpt2", resampler=ResamplerConfig(depth=3, heads=4, head_dim=4, num_latents=7, ffw_mult=3, max_frames=2)
    )
    model = build_model(cfg)
    resampler = model.encoder.resampler
    assert len(resampler.layers) == 3 and resampler.latents.shape == (7, 24)
    assert resampler.layers[0][0].to_q.out_features == 16 and resampler.layers[0][1][1].out_features == 72
    assert model.encoder.time_embeddings.embeddings.shape == (2, 1, 24)


def _span_encoder(spans: list[int], num_latents: int = 6):
    cfg = tiny_config(
        "gpt2",
        resampler=ResamplerConfig(
            depth=2, heads=2, head_dim=8, num_latents=num_latents, ffw_mult=2, max_frames=8, time_spans=spans
        ),
    )
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


@pytest.mark.parametrize("kind", [True, "spacetime", None])
def test_spatial_values_must_be_a_known_kind(kind):
    with pytest.raises(ConfigError, match="spatial_values must be one of"):
        ResamplerConfig(spatial_values=kind)


@pytest.mark.parametrize("competing, spans", [(-1, [1]), (7, [1]), (True, [1]), (1.0, [1]), (2, [1, 2])])
def test_competing_latents_must_be_a_whole_share_of_the_latents(competing, spans):
    with pytest.raises(ConfigError, match="competing_latents"):
        ResamplerConfig(num_latents=6, time_spans=spans, competing_latents=competing)


def test_a_lone_competing_latent_wins_every_token_whatever_it_asks():
    """Softmax over latents: with one competing latent every media token is all its own, so it
    reads the plain mean of the media's values. Softmax over tokens would follow its query."""
    torch.manual_seed(0)
    attention = PerceiverAttention(dim=16, heads=2, head_dim=8, competing=1)
    media = torch.randn(2, 12, 16)
    with torch.no_grad():
        values = attention.to_kv(attention.norm_media(media)).chunk(2, dim=-1)[1]  # [B, N, h*dh]
        mean_read = attention.to_out(values.mean(dim=1, keepdim=True))  # [B, 1, d]
        for _ in range(3):
            torch.testing.assert_close(attention(media, torch.randn(2, 1, 16)), mean_read, rtol=1e-4, atol=1e-5)
        flamingo = PerceiverAttention(dim=16, heads=2, head_dim=8)
        flamingo.load_state_dict(attention.state_dict())
        assert (flamingo(media, torch.randn(2, 1, 16)) - mean_read).abs().max() > 1e-3


def test_latents_past_the_competing_ones_attend_as_in_flamingo():
    torch.manual_seed(0)
    mixed = PerceiverAttention(dim=16, heads=2, head_dim=8, competing=2)
    flamingo = PerceiverAttention(dim=16, heads=2, head_dim=8)
    flamingo.load_state_dict(mixed.state_dict())
    media, latents, where = torch.randn(2, 12, 16), torch.randn(2, 5, 16), torch.randn(12, 16)
    with torch.no_grad():
        out_mixed, out_flamingo = mixed(media, latents, where), flamingo(media, latents, where)  # [B, R, d]
    torch.testing.assert_close(out_mixed[:, 2:], out_flamingo[:, 2:])
    assert (out_mixed[:, :2] - out_flamingo[:, :2]).abs().max() > 1e-3


@pytest.mark.parametrize("spans", [[1], [1, 2]])
def test_competing_latents_run_in_the_encoder(spans):
    encoder = _spatial_encoder(time_spans=spans, competing_latents=3, spatial_values="space_time")
    assert encoder.resampler.layers[0][0].competing == (3 if spans == [1] else 1)  # per span
    assert encoder.resample(torch.randn(2, 4, 4, 24)).shape == (2, 6, 24)


def test_span_frames_cover_every_frame_in_order():
    assert span_frames(16, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert span_frames(10, 4).tolist() == [[0, 1, 2], [2, 3, 4], [5, 6, 7], [7, 8, 9]]  # overlapping runs
    assert span_frames(1, 3).tolist() == [[0], [0], [0]]  # an image: every span sees it
    assert span_frames(5, 1).tolist() == [[0, 1, 2, 3, 4]]


def _spatial_encoder(**resampler):
    cfg = tiny_config(
        "gpt2",
        resampler=ResamplerConfig(depth=2, heads=2, head_dim=8, num_latents=6, ffw_mult=2, max_frames=4, **resampler),
    )
    return build_model(cfg).encoder


@pytest.mark.parametrize("keep_cls", [True, False])
def test_tokens_per_frame_is_what_the_tower_returns(keep_cls, rng):
    cfg = tiny_config("gpt2")
    cfg.vision.keep_cls = keep_cls
    backbone = build_model(cfg).encoder.backbone
    frames = torch.from_numpy(rng.integers(0, 256, size=(1, 2, 16, 16, 3), dtype="uint8"))
    assert backbone(frames).shape[2] == backbone.tokens_per_frame == 4 + keep_cls


@pytest.mark.parametrize("kind", ["space", "space_time"])
@pytest.mark.parametrize("spans", [[1], [1, 2]])
def test_spatial_values_tell_the_resampler_where_a_token_is(spans, kind):
    features = torch.randn(2, 4, 4, 24)  # [B, T, S, d], S = the tiny tower's 4 patches
    shuffled = features[:, :, torch.tensor([3, 0, 1, 2])]  # the same patches, elsewhere
    plain, spatial = _spatial_encoder(time_spans=spans), _spatial_encoder(time_spans=spans, spatial_values=kind)
    assert spatial.spatial_values.space.shape == (4, 24)
    with torch.no_grad():
        _open_time_mix(spatial)
        # a Perceiver is blind to where its inputs are ...
        torch.testing.assert_close(plain.resample(features), plain.resample(shuffled), rtol=1e-5, atol=1e-5)
        # ... unless told
        assert (spatial.resample(features) - spatial.resample(shuffled)).abs().max() > 1e-3
        # and when is still told only by the time embeddings
        if spans == [1]:
            spatial.time_embeddings.embeddings.normal_()
            assert (spatial.resample(features) - spatial.resample(features.flip(1))).abs().max() > 1e-3
            spatial.time_embeddings.embeddings.zero_()
            torch.testing.assert_close(
                spatial.resample(features), spatial.resample(features.flip(1)), rtol=1e-5, atol=1e-5
            )


def _open_time_mix(encoder):
    """space_time starts as space (its time projection is zero): give it a time factor to test."""
    if encoder.spatial_values.time_mix is not None:
        encoder.spatial_values.time_mix.weight.normal_(std=1.0)


def test_space_time_values_tell_which_way_a_token_moved():
    """A thing crossing four places left to right, or right to left, over four frames. Without
    time in the tokens the resampler sees the same (token, place) pairs either way, so "space"
    cannot tell the two apart; "space_time" pairs each place with its frame's time, and can."""
    torch.manual_seed(0)
    background, thing = torch.randn(24), torch.randn(24)
    right = background.repeat(4, 4, 1)  # [T, S, d]
    for t in range(4):
        right[t, t] = thing  # place t in frame t
    left = right.flip(0)  # place 3 - t in frame t
    time_table = torch.randn(4, 1, 24)  # [T, 1, d]: what the time embeddings would be
    resampler = PerceiverResampler(dim=24, depth=2, heads=2, head_dim=8, num_latents=6, ffw_mult=2)
    outputs = {}
    for kind in ["space", "space_time"]:
        values = SpatialValues(tokens_per_frame=4, dim=24, timed=kind == "space_time")
        with torch.no_grad():
            if values.time_mix is not None:
                assert values.time_mix.weight.abs().max() == 0  # starts as "space"
                values.time_mix.weight.normal_(std=0.5)
            where = values(time_table, tokens_per_frame=4)  # [T*S, d]
            outputs[kind] = [resampler(x.reshape(1, 16, 24), where) for x in (right, left)]  # [1, R, d] each
    torch.testing.assert_close(*outputs["space"], rtol=1e-5, atol=1e-5)
    assert (outputs["space_time"][0] - outputs["space_time"][1]).abs().max() > 1e-3


def test_spatial_values_change_what_a_latent_reads_not_where_it_looks():
    """Through the values only, the update is affine in ``where``: f(2w) - f(w) = f(w) - f(0).
    Through the keys, the softmax would bend it."""
    torch.manual_seed(0)
    attention = PerceiverAttention(dim=16, heads=2, head_dim=8)
    media, latents, where = torch.randn(2, 12, 16), torch.randn(2, 3, 16), torch.randn(12, 16)
    with torch.no_grad():
        f = lambda w: attention(media, latents, w)  # noqa: E731
        step = f(where) - f(torch.zeros_like(where))
        assert step.abs().max() > 1e-3
        torch.testing.assert_close(f(2 * where) - f(where), step, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(f(torch.zeros_like(where)), f(None))


@pytest.mark.parametrize("kind", ["space", "space_time"])
def test_spatial_values_refuse_another_number_of_tokens(kind):
    encoder = _spatial_encoder(spatial_values=kind)
    with pytest.raises(FrameFormatError, match="learned for 4 tokens per frame"):
        encoder.resample(torch.randn(1, 2, 7, 24))
