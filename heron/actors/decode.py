"""The decode actor: one run of a source at a time, handed out a few windows per call."""

from __future__ import annotations

from dataclasses import dataclass

from heron.config import DecodeConfig
from heron.pipeline.decode_stage import DecodeStage
from heron.types import FrameBatch


@dataclass(frozen=True)
class DecodeRun:
    """One decode actor's share of an ingest: a source and a run of whole windows [start, end)."""

    source: str
    source_id: str
    start: float | None
    end: float | None


class DecodeActor:
    """Decodes one run at a time; a pooled actor serves the runs of many ingests in turn.

    Every call names its run, so an actor Ray restarted (with only its constructor) reopens the
    run from its start, as a fresh one would; windows are keyed by index, so nothing doubles.
    """

    def __init__(self, cfg: DecodeConfig):
        self.cfg = cfg
        self.run: DecodeRun | None = None
        self.stage: DecodeStage | None = None

    def _stage(self, run: DecodeRun) -> DecodeStage:
        if run != self.run:  # a new run, or Ray restarted this actor in the middle of one
            self.stage, self.run = None, None  # the last run's file is closed before the next opens
            self.stage = DecodeStage(run.source, self.cfg, start=run.start, end=run.end, source_id=run.source_id)
            self.run = run
        return self.stage

    def next(self, run: DecodeRun, n: int) -> list[FrameBatch]:
        return self._stage(run).next(n)

    def finish(self, run: DecodeRun) -> dict | None:
        """The run's decode stats (None if it never opened here); its file is closed."""
        stats = self.stage.stats() if run == self.run else None
        self.stage, self.run = None, None
        return stats
