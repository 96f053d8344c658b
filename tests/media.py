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
