"""The decode actor: one run of a source at a time, handed out a few windows per call."""

from __future__ import annotations

import os
from dataclasses import dataclass

from heron.config import DecodeConfig
from heron.errors import CorruptVideoError, EmptyVideoError
from heron.pipeline.decode_stage import DecodeStage
from heron.pipeline.windows import WindowGrid
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

    Every call names its run and, with ``offset``, where in it the caller is: a call that finds
    the actor elsewhere (Ray restarted it with only its constructor and retried the call, or the
    caller resends a lost call) reopens the run at that window — by seeking on the window grid, or
    for URLs and keyframe passes by decoding from the run's start and skipping — so each window
    is handed out once, with the same frames and times as in an undisturbed pass.
    """

    def __init__(self, cfg: DecodeConfig):
        self.cfg = cfg
        self.grid = WindowGrid.of(cfg)
        self.run: DecodeRun | None = None
        self.stage: DecodeStage | None = None
        self.handed = 0  # windows of self.run handed out so far
        self.resumed = False  # self.stage was reopened part-way through its run
        self.ended = False  # a call came back short: self.run has no more windows

    def pid(self) -> int:
        """This actor's OS process id (fault tests kill it; soak tests watch its memory and files)."""
        return os.getpid()

    def _stage(self, run: DecodeRun, offset: int | None) -> DecodeStage | None:
        """The run's stage positioned at window ``offset`` of it (None: wherever it is); None when
        the run has no windows from ``offset`` on."""
        if run == self.run and (offset is None or offset == self.handed or (self.ended and offset > self.handed)):
            return self.stage  # (past the end of an ended run: its stage gives [] and keeps its stats)
        self.stage, self.run, self.handed, self.ended = None, None, 0, False  # the last run's file is closed first
        offset = offset or 0
        if offset and self._seekable(run):
            start = self.grid.start_of(self.grid.first(run.start) + offset)
            # The caller was handed `offset` whole windows, so the run did decode up to here:
            # nothing from here on is the run's end (as a short batch would have told it).
            stage = None
            if run.end is None or start < run.end:
                try:
                    stage = DecodeStage(run.source, self.cfg, start=start, end=run.end, source_id=run.source_id)
                except (EmptyVideoError, CorruptVideoError):
                    pass
        else:
            stage = DecodeStage(run.source, self.cfg, start=run.start, end=run.end, source_id=run.source_id)
            if offset:
                stage.next(offset)  # decoded again, not handed out again
        self.stage, self.run, self.handed, self.resumed = stage, run, offset, bool(offset)
        return stage

    def _seekable(self, run: DecodeRun) -> bool:
        """Windows sit on the grid (not keyframe times) and the source is a local file."""
        return not self.cfg.keyframes and "://" not in run.source

    def next(self, run: DecodeRun, n: int, offset: int | None = None) -> list[FrameBatch]:
        """Up to ``n`` windows of ``run`` from its window ``offset`` on (None: after the last
        handed out); fewer than ``n`` (or []) means the run is over."""
        stage = self._stage(run, offset)
        batches: list[FrameBatch] = []
        try:
            batches = stage.next(n) if stage is not None else []
        except (EmptyVideoError, CorruptVideoError):
            if not self.resumed:  # as in an undisturbed pass: the caller decides
                raise
            # part-way through, the source breaks off: the run ends there
        self.handed += len(batches)
        self.ended = len(batches) < n
        return batches

    def finish(self, run: DecodeRun) -> dict | None:
        """The run's decode stats (None if it never opened here); its file is closed. After a
        restart the stats count only what this actor decoded."""
        stats = self.stage.stats() if run == self.run and self.stage is not None else None
        self.stage, self.run, self.handed, self.ended = None, None, 0, False
        return stats
