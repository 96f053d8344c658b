"""One local Ray for the whole test session (starting it costs seconds), plus a sample video."""

from __future__ import annotations

import os

import numpy as np
import pytest

from heron.data.video_writer import write_video


@pytest.fixture(scope="session")
def ray_session():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def moving_square_frames(seconds: float = 10.0, fps: int = 8, height: int = 48, width: int = 64) -> np.ndarray:
    """A red square crossing a dark frame left to right: uint8 [T, H, W, 3]."""
    count = int(seconds * fps)
    frames = np.full((count, height, width, 3), 20, dtype=np.uint8)
    for i in range(count):
        x = int(i / max(count - 1, 1) * (width - 16))
        frames[i, 16:32, x : x + 16] = (220, 30, 30)
    return frames


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("videos") / "square.mp4"
    return str(write_video(path, moving_square_frames(), fps=8))
