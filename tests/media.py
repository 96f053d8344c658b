"""Small generated videos for tests."""

from __future__ import annotations

import numpy as np


def moving_square_frames(seconds: float = 10.0, fps: int = 8, height: int = 48, width: int = 64) -> np.ndarray:
    """A red square crossing a dark frame left to right: uint8 [T, H, W, 3]."""
    count = int(seconds * fps)
    frames = np.full((count, height, width, 3), 20, dtype=np.uint8)
    for i in range(count):
        x = int(i / max(count - 1, 1) * (width - 16))
        frames[i, 16:32, x : x + 16] = (220, 30, 30)
    return frames


def appearing_square_frames(
    seconds: float,
    appears: list[tuple[float, float]],
    *,
    fps: int = 8,
    size: int = 96,
    color: tuple[int, int, int] = (220, 40, 40),
) -> np.ndarray:
    """A scene in the demo model's world: a dark frame where a square is on screen during each
    (start, end) of ``appears`` (seconds), drifting right. uint8 [T, size, size, 3]."""
    count = int(seconds * fps)
    frames = np.full((count, size, size, 3), 16, dtype=np.uint8)
    side = size // 5
    for i in range(count):
        t = i / fps
        for start, end in appears:
            if start <= t < end:
                x = int(size * 0.1 + (t - start) / max(end - start, 1e-6) * size * 0.5)
                y = size // 3
                frames[i, y : y + side, x : x + side] = color
    return frames
