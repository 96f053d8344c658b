"""Which decoded frames a window keeps: fixed-rate sampling by presentation time, and output sizes.

Sample times are t_k = t0 + k / fps, where t0 is ``start`` or, without one, 0 (the stream's start).
Each t_k takes the first frame whose pts >= t_k; a frame is kept at most once, so in a gap longer
than 1 / fps fewer frames are kept rather than one frame repeated (correct on variable-frame-rate
video). Frames with pts >= ``end`` are never kept. See docs/decoding.md.
"""

from __future__ import annotations

import math

# pts are pts * time_base in float; this absorbs the rounding so a frame exactly on a sample
# time is kept, while staying far below any real frame interval.
PTS_EPSILON = 1e-6  # seconds


class FrameSampler:
    """Decides which frames to keep, in pts order (the rule in the module docstring)."""

    def __init__(self, fps: float, start: float | None, end: float | None):
        self.step, self.end = 1.0 / fps, end
        self.t0 = self.next_time = start if start is not None else 0.0

    def past_end(self, pts: float) -> bool:
        return self.end is not None and pts >= self.end - PTS_EPSILON

    def keep(self, pts: float) -> bool:
        """True if the frame at ``pts`` seconds is sampled; frames must come in pts order."""
        if self.past_end(pts) or pts < self.next_time - PTS_EPSILON:
            return False
        self.skip_through(pts)
        return True

    def skip_through(self, pts: float) -> None:
        """Move to the first sample time after ``pts`` (a frame at ``pts`` was kept)."""
        # Integer k, so no drift; the epsilon is seconds, like the pts' rounding (float32 timestamps
        # put a frame meant for 3.12 s at 3.1199999 s, which must still count as sample 3.12's).
        k = math.floor((pts - self.t0 + PTS_EPSILON) / self.step) + 1
        self.next_time = self.t0 + k * self.step


MAX_ASPECT = 4  # an int size keeps the aspect up to long side = 4 x short side, then squeezes


def output_size(width: int, height: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """(h, w) pixels a width x height video is resized to: both even; an int size keeps aspect up
    to MAX_ASPECT (a 1000x10 strip would otherwise be 22400 px wide: 120 MB per 8-frame window)."""
    if isinstance(size, tuple):
        return size
    scale = size / min(width, height)
    longest = MAX_ASPECT * size
    return _even(min(height * scale, longest)), _even(min(width * scale, longest))


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))
