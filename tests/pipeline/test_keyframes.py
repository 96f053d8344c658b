"""Keyframe mode: only keyframes are decoded, with their real timestamps, and cached apart."""

from __future__ import annotations

import numpy as np
import pytest

from heron.config import DecodeConfig, PipelineConfig
from heron.data.video_writer import write_video
from heron.errors import ConfigError
from heron.pipeline.decode import VideoDecoder
from heron.pipeline.fingerprint import encoder_settings


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory):
    """10 s at 30 fps with a keyframe every 30 frames (each second), random texture."""
    frames = np.random.default_rng(0).integers(0, 255, (300, 64, 64, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("kf") / "gop.mp4"
    return write_video(path, frames, fps=30, options={"g": "30", "keyint_min": "30", "sc_threshold": "0"})


def test_only_keyframes_are_decoded_at_their_own_times(gop_clip):
    decoder = VideoDecoder(gop_clip, DecodeConfig(fps=4, window_frames=4, size=32, keyframes=True))
    windows = list(decoder)
    assert decoder.stats.decoder == "pyav" and decoder.stats.frames_decoded == 10  # of 300
    assert [w.pts.tolist() for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert decoder.stats.truncated_at is None  # the last keyframe at 9 s of 10 is not a truncation


def test_fps_caps_the_keyframes_kept(gop_clip):
    windows = list(VideoDecoder(gop_clip, DecodeConfig(fps=0.5, window_frames=8, size=32, keyframes=True)))
    assert np.concatenate([w.pts for w in windows]).tolist() == [0, 2, 4, 6, 8]


def test_keyframe_latents_are_cached_apart_and_decord_is_refused():
    plain, skim = PipelineConfig(), PipelineConfig(decode=DecodeConfig(keyframes=True))
    assert "keyframes" not in encoder_settings(plain)  # caches made before the option stay valid
    assert encoder_settings(skim) == {**encoder_settings(plain), "keyframes": True}
    with pytest.raises(ConfigError, match="keyframes: true decodes with PyAV"):
        DecodeConfig(keyframes=True, decoder="decord")
    with pytest.raises(ConfigError, match="keyframes must be true or false"):
        DecodeConfig(keyframes="yes")
