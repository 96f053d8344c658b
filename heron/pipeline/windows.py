"""The window grid: where each window of a source sits in time, in one pure, tested place.

Window ``i`` of a source starts at ``i * w`` seconds, ``w = window_frames / fps``, and holds the
``window_frames`` frames sampled from there on. Every request is aligned to this grid — a range
question decodes whole windows, keyed by the same index whichever request made them — so the
cache of a whole-video pass serves range questions and vice versa.

Times are floats; ``_EPS`` absorbs their rounding (4.48 s / 0.64 s = 7.000000000000001 is the
start of window 7, not inside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from heron.config import DecodeConfig
from heron.errors import TimeRangeError

_EPS = 1e-9  # in windows: far below any real offset, far above float rounding


def check_time_range(start: float | None, end: float | None) -> tuple[float | None, float | None]:
    """(start, end) in seconds as floats; TimeRangeError if negative, not finite or start >= end."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise TimeRangeError(f"{name} must be a non-negative number of seconds, got {value}")
    if start is not None and end is not None and start >= end:
        raise TimeRangeError(f"start ({start:g} s) must be before end ({end:g} s)")
    return (None if start is None else float(start)), (None if end is None else float(end))


@dataclass(frozen=True)
class WindowGrid:
    """Windows of ``frames`` frames sampled at ``fps``; see the module docstring."""

    fps: float
    frames: int

    @classmethod
    def of(cls, cfg: DecodeConfig) -> WindowGrid:
        return cls(cfg.fps, cfg.window_frames)

    @property
    def window_s(self) -> float:
        """Seconds of video one window covers."""
        return self.frames / self.fps

    def start_of(self, index: int) -> float:
        """Where window ``index`` starts, seconds."""
        return index * self.window_s

    def index_at(self, t: float) -> int:
        """The window that time ``t`` (seconds) falls in."""
        return math.floor(t / self.window_s + _EPS)

    def first(self, start: float | None) -> int:
        """The first window of a request starting at ``start`` (None: the source's start)."""
        return 0 if start is None else self.index_at(start)

    def end_index(self, stop: float) -> int:
        """One past the last window that starts before ``stop`` seconds (finite)."""
        return math.ceil(stop / self.window_s - _EPS)

    def align(self, start: float | None, end: float | None) -> tuple[float | None, float | None]:
        """[start, end) widened to whole windows: start down, end up to the grid (None stays None)."""
        aligned_start = None if start is None else self.start_of(self.first(start))
        aligned_end = None if end is None else self.start_of(self.end_index(end))
        return aligned_start, aligned_end

    def indices(self, start: float | None, end: float | None, duration: float | None) -> range | None:
        """The windows a request [start, end) needs of a source ``duration`` s long (None: unknown).

        None when neither ``end`` nor ``duration`` bounds the request. A request starting at or past
        the end still names its first window, so "is it cached" has an answer."""
        stop = min(math.inf if end is None else end, math.inf if duration is None else duration)
        if not math.isfinite(stop):
            return None
        first = self.first(start)
        return range(first, max(first + 1, self.end_index(stop)))

    def runs(
        self, start: float | None, end: float | None, duration: float | None, k: int
    ) -> list[tuple[float | None, float | None]]:
        """[start, end) cut into at most ``k`` runs of whole windows, for parallel decoders.

        Cuts fall on the grid, so each window is decoded by exactly one run and keyed as a single
        pass would key it. The first run keeps the caller's start, the last its end (None: to the
        real end of the file). One run when the length is unknown or ``k`` is 1."""
        needed = self.indices(start, end, duration)
        if k <= 1 or needed is None:
            return [(start, end)]
        n = len(needed)
        k = min(k, n)
        cuts = [needed.start + (i * n) // k for i in range(k + 1)]
        return [
            (start if i == 0 else self.start_of(cuts[i]), end if i == k - 1 else self.start_of(cuts[i + 1]))
            for i in range(k)
        ]

    def count(self, start: float | None, end: float | None, duration: float | None) -> int | None:
        """How many windows a request covers, when its length is known (for progress bars)."""
        needed = self.indices(start, end, duration)
        return None if needed is None else len(needed)
