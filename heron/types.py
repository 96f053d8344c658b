"""Plain data that flows between pipeline stages (and between Ray actors).

Only ``MediaChunk`` (compact latents) crosses into Redis; raw frames never do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameBatch:
    """One window of sampled frames from a source.

    frames: uint8 [T, H, W, 3] RGB, already resized on decode.
    pts:    float64 [T] presentation times in seconds from the start of the source.
    """

    source_id: str  # content id of the source (see pipeline.sources)
    index: int  # window number within the source, 0-based
    frames: np.ndarray
    pts: np.ndarray

    @property
    def t_start(self) -> float:
        return float(self.pts[0])

    @property
    def t_end(self) -> float:
        return float(self.pts[-1])


@dataclass(frozen=True)
class MediaChunk:
    """The encoder's output for one window: R visual tokens of width d.

    latents: float16/float32 [R, d]. t_start/t_end: seconds, the window's first and last frame.
    """

    source_id: str
    index: int
    t_start: float
    t_end: float
    latents: np.ndarray
    # float32 [p]: the window in the model's joint text-video space (unit length), when it has one
    embedding: np.ndarray | None = None
