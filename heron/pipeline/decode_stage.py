"""Decode stage: hands out windows of one source a few at a time (pull-based, so the caller
controls how much is in flight), aligned to the source's window grid."""

from __future__ import annotations

from dataclasses import asdict

from heron.config import DecodeConfig
from heron.pipeline.decode import VideoDecoder
from heron.pipeline.windows import WindowGrid
from heron.types import FrameBatch


class DecodeStage:
    """``next(n)`` returns up to n windows with source-global indices; [] when the source is done.

    The range is widened to whole windows of the grid, so a window is always the same window,
    whichever request decoded it."""

    def __init__(
        self,
        source: str,
        cfg: DecodeConfig,
        *,
        start: float | None = None,
        end: float | None = None,
        source_id: str | None = None,
    ):
        grid = WindowGrid.of(cfg)
        self.first_index = grid.first(start)
        aligned_start, aligned_end = grid.align(start, end)
        self.decoder = VideoDecoder(source, cfg, start=aligned_start, end=aligned_end, source_id=source_id)
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
