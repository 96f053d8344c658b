"""CLI fixtures: a sample video, and a guard that fails any test whose command starts Ray."""

from __future__ import annotations

import numpy as np
import pytest

from heron.data.video_writer import write_video
from tests.media import moving_square_frames


@pytest.fixture
def video(tmp_path):
    frames = moving_square_frames(seconds=6)
    frames[:, :4] = np.random.default_rng(abs(hash(str(tmp_path))) % 2**32).integers(0, 255, (1, 4, 64, 3))
    return str(write_video(tmp_path / "clip.mp4", frames, fps=8))  # unique bytes: a fresh cache entry


@pytest.fixture
def no_ray(monkeypatch):
    """Misuse must be caught before Ray starts: starting it fails the test."""
    import heron.service.runtime as runtime

    def refuse(address=None):
        raise AssertionError("this mistake was only caught after Ray started")

    monkeypatch.setattr(runtime, "init_ray", refuse)
    monkeypatch.setattr("heron.service.heron.init_ray", refuse)
