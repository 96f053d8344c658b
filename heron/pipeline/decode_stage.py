"""Decode stage: hands out windows of one source a few at a time (pull-based, so the caller
controls how much is in flight)."""

from __future__ import annotations

import math
from dataclasses import asdict

from heron.pipeline.decode import DecodeConfig, VideoDecoder
from heron.pipeline.types import FrameBatch


def window_grid(start: float | None, cfg: DecodeConfig) -> tuple[float | None, int]:
    """Align a start time down to the window grid of the source: (aligned start, first index).

    Windows are keyed by ``index = t_start * fps / window_frames``, the same for any --from/--to
    request, so the cache of a whole-video pass serves range questions and vice versa.
    """
    if start is None:
        return None, 0
    first = math.floor(start * cfg.fps / cfg.window_frames + 1e-9)
    return first * cfg.window_frames / cfg.fps, first


def grid_end(end: float | None, cfg: DecodeConfig) -> float | None:
    """Align an end time up to the window grid, so a range request decodes whole windows only
    (a cached window is always the same window, whichever request made it)."""
    if end is None:
        return None
    window_s = cfg.window_frames / cfg.fps
    return math.ceil(end / window_s - 1e-9) * window_s


class DecodeStage:
    """``next(n)`` returns up to n windows with source-global indices; [] when the source is done."""

    def __init__(self, source: str, cfg: DecodeConfig, *, start: float | None = None,
                 end: float | None = None, source_id: str | None = None):
        aligned, self.first_index = window_grid(start, cfg)
        self.decoder = VideoDecoder(source, cfg, start=aligned, end=grid_end(end, cfg), source_id=source_id)
        self._windows = iter(self.decoder)

    def next(self, n: int) -> list[FrameBatch]:
        out = []
        for batch in self._windows:
            out.append(FrameBatch(batch.source_id, self.first_index + batch.index, batch.frames, batch.pts))
            if len(out) == n:
                break
        return out

    def info(self) -> dict:
        """The probed VideoInfo and the source id, as plain data."""
        return {"source_id": self.decoder.source_id, **asdict(self.decoder.info)}

    def stats(self) -> dict:
        return asdict(self.decoder.stats)
