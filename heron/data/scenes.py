"""Scenes for live-stream demos, tests and benchmarks, in the demo model's world (dark, coloured shapes)."""

from __future__ import annotations

import numpy as np


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
