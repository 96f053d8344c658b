"""PyAV backend: seek once to the start, decode packets in order, convert only the kept frames.

Reads files and URLs (with a timeout on every network wait). A backward seek lands on the keyframe
at or before its target; if it lands later, or nothing decodes after it (a server that ignores
range requests hands FFmpeg the wrong bytes), it decodes again from the start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import av
import numpy as np

from heron.pipeline.decode.container import first_line, open_container, video_stream
from heron.pipeline.decode.reader import FrameSelector, ReadProgress, StreamTruncated
from heron.pipeline.sources import Source

logger = logging.getLogger(__name__)


class _SeekFailed(Exception):
    """Nothing decoded after a seek, or it landed late; decode again from the start."""


class PyAVReader:
    """Frames of ``source`` converted and resized to ``height`` x ``width`` by one swscale call each.

    fps: the stream's average rate (None: unknown), for frames without a timestamp and for
    checking where a seek landed. timeout_s: each network wait of a URL.
    """

    name = "pyav"

    def __init__(
        self,
        source: Source,
        *,
        height: int,
        width: int,
        fps: float | None,
        timeout_s: float,
        keyframes_only: bool = False,
    ):
        self.source, self.height, self.width = source, height, width
        self.interval = 1.0 / fps if fps else None
        self.timeout_s = timeout_s
        self.keyframes_only = keyframes_only  # the decoder skips every non-key frame (skip_frame=NONKEY)
        self.progress = ReadProgress(bytes_read=0)

    def frames(self, selector: FrameSelector, seek_to: float | None = None) -> Iterator[tuple[np.ndarray, float]]:
        logger.info("decoding %s with PyAV", self.source)
        try:
            yield from self._decode(selector, seek_to if seek_to else None)
        except _SeekFailed as failure:
            logger.info("seeking in %s failed (%s); decoding from the start", self.source, failure)
            yield from self._decode(selector, None)

    def _decode(self, selector: FrameSelector, seek_to: float | None) -> Iterator[tuple[np.ndarray, float]]:
        last_pts = None
        with open_container(self.source, self.timeout_s) as container:
            stream = video_stream(container)
            stream.thread_type = "AUTO"  # frame + slice threads: sequential decode is the cost
            if self.keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
            offset = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            if seek_to is not None:  # the keyframe at or before seek_to; earlier frames are dropped
                container.seek(int((seek_to + offset) / stream.time_base), stream=stream, backward=True)
            try:
                for packet in container.demux(stream):
                    self.progress.bytes_read += packet.size
                    if self.keyframes_only and packet.pts is not None:  # frames not decoded still count as read
                        self.progress.stream_end = max(
                            self.progress.stream_end or 0.0, float(packet.pts * packet.time_base) - offset
                        )
                    for frame in packet.decode():
                        pts = self._seconds(frame, offset, last_pts)
                        if seek_to is not None and last_pts is None:
                            self._check_landing(pts, seek_to)
                        last_pts = pts
                        self.progress.saw_frame(pts)
                        if selector.past_end(pts):
                            return
                        if selector.keep(pts):  # only kept frames are converted and resized
                            yield frame.to_ndarray(width=self.width, height=self.height, format="rgb24"), pts
            except av.error.FFmpegError as exc:
                if seek_to is not None and last_pts is None:
                    raise _SeekFailed(first_line(exc)) from exc
                raise StreamTruncated(last_pts, first_line(exc)) from exc

    def _check_landing(self, first_pts: float, seek_to: float) -> None:
        """Landing after the target means the seek skipped frames (HTTP without range support)."""
        if first_pts > seek_to + 2 * (self.interval or 0.1):
            raise _SeekFailed(f"landed at {first_pts:.2f} s, after the requested {seek_to:.2f} s")

    def _seconds(self, frame: av.VideoFrame, offset: float, previous: float | None) -> float:
        if frame.pts is not None:
            return float(frame.pts * frame.time_base) - offset
        # No timestamp (rare, e.g. raw streams): assume the average frame interval.
        return 0.0 if previous is None else previous + (self.interval or 0.0)
