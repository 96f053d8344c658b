"""Checks that need a CUDA device (marked ``gpu``; skipped without one): NVDEC frames against PyAV's,
the recorded decode graph against eager decoding, batched answers against one-by-one answers.

Self-contained (no Redis fixture), so ``bench/gpu.sh`` runs them with ``--noconftest`` on a GPU
image that has no Redis client: ``pytest -m gpu --noconftest tests/gpu``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PROMPTS = ["<image>Q: colour? A:", "a much longer preamble here <image> then <image> Q: count? A:", "no media Q:"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from heron.data.video_writer import write_video

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 4 * i, axis=1) for i in range(90)])  # (90, 240, 320, 3): 3 s at 30 fps
    return write_video(tmp_path_factory.mktemp("gpu") / "clip.mp4", frames, fps=30.0, gop=30)


def _decode(clip, **cfg):
    from heron.config import DecodeConfig
    from heron.pipeline.decode import VideoDecoder

    decoder = VideoDecoder(clip, DecodeConfig(fps=4.0, window_frames=4, size=112, **cfg))
    windows = list(decoder)
    return decoder.stats, np.concatenate([w.frames for w in windows]), np.concatenate([w.pts for w in windows])


def test_nvdec_frames_match_pyav(clip):
    from heron.pipeline.decode.torchcodec_reader import gpu_decode_unavailable

    if why := gpu_decode_unavailable():
        pytest.skip(f"GPU decoding unavailable: {why}")
    gpu_stats, gpu_frames, gpu_pts = _decode(clip, decoder="torchcodec")
    _, cpu_frames, cpu_pts = _decode(clip, decoder="pyav")
    assert gpu_stats.decoder == "nvdec" and gpu_stats.fallback_reason is None
    np.testing.assert_allclose(gpu_pts, cpu_pts, atol=1e-6)
    diff = np.abs(gpu_frames.astype(int) - cpu_frames.astype(int))  # NVDEC colour + torch resize vs swscale
    assert gpu_frames.shape == cpu_frames.shape and diff.mean() < 6, diff.mean()
    auto_stats, _, _ = _decode(clip)
    assert auto_stats.decoder == "nvdec"  # auto picks the GPU here
    key_gpu, _, key_gpu_pts = _decode(clip, keyframes=True)
    _, _, key_cpu_pts = _decode(clip, decoder="pyav", keyframes=True)
    assert key_gpu.decoder == "nvdec"
    np.testing.assert_allclose(key_gpu_pts, key_cpu_pts, atol=1e-6)


def _tiny_model(arch: str = "llama"):
    from heron.models import build_model
    from tests.models.conftest import open_gates, tiny_config

    model = build_model(tiny_config(arch, device="cuda")).eval()
    open_gates(model, 0.5)
    return model


def _media(rng):
    from tests.models.conftest import random_frames

    return [[random_frames(rng)], [random_frames(rng), random_frames(rng, frames=3)], []]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_graph_decode_gives_the_eager_tokens(arch):
    from heron.models import graphs

    model = _tiny_model(arch)
    assert graphs.graphs_wanted(model)
    batch = model.prepare(PROMPTS, _media(np.random.default_rng(0)), max_new_tokens=24)
    eager = model.generate_ids(batch, max_new_tokens=24, stop_at_end_of_chunk=False)
    static = torch.stack(
        list(graphs.decode_steps(model, batch, max_new_tokens=24, stop_at_end_of_chunk=False, capture=False)), 1
    )
    graphs._POOLS.clear()
    graphed = torch.stack(list(graphs.decode_steps(model, batch, max_new_tokens=24, stop_at_end_of_chunk=False)), 1)
    pool = graphs.graph_pool(model)
    assert all(g.graph is not None for g in pool._graphs.values()), "capture fell back to eager"
    assert torch.equal(graphed, static) and torch.equal(graphed, eager)
    again = torch.stack(list(graphs.decode_steps(model, batch, max_new_tokens=24, stop_at_end_of_chunk=False)), 1)
    assert torch.equal(again, eager)  # the second request replays the same graph


def test_batched_answers_equal_sequential_ones():
    from heron.models import graphs

    model = _tiny_model("llama")
    media = _media(np.random.default_rng(1))
    batch = model.prepare(PROMPTS, media, max_new_tokens=16)
    together = torch.stack(list(graphs.decode_steps(model, batch, max_new_tokens=16, stop_at_end_of_chunk=False)), 1)
    for row, (prompt, items) in enumerate(zip(PROMPTS, media)):
        one = model.prepare([prompt], [items], max_new_tokens=16)
        alone = torch.stack(list(graphs.decode_steps(model, one, max_new_tokens=16, stop_at_end_of_chunk=False)), 1)
        assert together[row, : alone.shape[1]].tolist() == alone[0].tolist()
