"""The seam between the decoder and its backends: one reader interface, whatever decodes.

A backend (decord, PyAV, a GPU decoder) is a ``FrameReader``: it yields the frames its
``FrameSelector`` keeps, as (RGB uint8 [H, W, 3], pts seconds), in pts order, and keeps its own
``ReadProgress``. It never touches the decoder's config, stats or callbacks. When the data stops
being decodable it raises ``StreamTruncated`` (the decoder keeps what came before); when it
cannot do its job at all (cannot open the file, fails part-way), ``ReaderFailed``, and the
decoder hands the rest to the next backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class FrameSelector(Protocol):
    """What the decoder tells a reader: which frames to keep (``FrameSampler``)."""

    def keep(self, pts: float) -> bool: ...

    def past_end(self, pts: float) -> bool: ...


@dataclass
class ReadProgress:
    """What one reader did, in its own counters (the decoder folds them into DecodeStats)."""

    frames_decoded: int = 0  # frames the backend produced (decord: frames stepped over, estimated)
    bytes_read: int | None = None  # compressed bytes fed to the decoder, when the backend says
    first_pts: float | None = None  # pts (s) of the first decoded frame
    last_pts: float | None = None  # pts (s) of the last decoded frame
    stream_end: float | None = None  # the last pts the stream holds, as far as the reader knows (s)
    damaged: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, reason) skipped

    def saw_frame(self, pts: float) -> None:
        self.frames_decoded += 1
        if self.first_pts is None:
            self.first_pts = pts
        self.last_pts = pts
        self.stream_end = pts if self.stream_end is None else max(self.stream_end, pts)


class StreamTruncated(Exception):
    """The stream stops being decodable at ``at`` seconds (None: before the first frame)."""

    def __init__(self, at: float | None, reason: str):
        super().__init__(reason)
        self.at, self.reason = at, reason


class ReaderFailed(Exception):
    """This backend cannot read (the rest of) the source; another may."""


class FrameReader(Protocol):
    name: str  # "decord", "pyav", ...
    progress: ReadProgress

    def frames(self, selector: FrameSelector, seek_to: float | None) -> Iterator[tuple[np.ndarray, float]]:
        """Kept frames (H, W, 3) uint8 with their pts (s), from ``seek_to`` (None: the start) on."""
        ...
