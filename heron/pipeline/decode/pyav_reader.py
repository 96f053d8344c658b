"""PyAV backend: seek once to the start, decode packets in order, convert only the kept frames.

Reads files and URLs (with a timeout on every network wait). A backward seek lands on the keyframe
at or before its target; if it lands later, or nothing decodes after it (a server that ignores
range requests hands FFmpeg the wrong bytes), it decodes again from the start.

Damage is skipped, not fatal: a packet the demuxer flags corrupt is dropped (fed to a
frame-threaded decoder it would make it drop the frames it holds); a packet that fails to decode
makes the decoder wait for the next keyframe (and forget the damaged group of pictures); a demux
error re-opens the packet generator where the container stands. Each skip is a damaged span
(``DamageLog``) in the reader's progress. A decode that yields no frame for ``stall_s`` seconds
(a spinning demuxer, a URL trickling bytes) stops with DecodeTimeoutError.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import av
import numpy as np

from heron.errors import DecodeTimeoutError
from heron.pipeline.decode.container import first_line, open_container, video_stream
from heron.pipeline.decode.damage import DamageLog
from heron.pipeline.decode.reader import FrameSelector, ReadProgress, StreamTruncated
from heron.pipeline.sources import Source

logger = logging.getLogger(__name__)

MAX_DEMUX_ERRORS = 100  # demux errors in a row, with no packet between, before the rest is given up


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
        stall_s: float = 60.0,
    ):
        self.source, self.height, self.width = source, height, width
        self.interval = 1.0 / fps if fps else None
        self.timeout_s = timeout_s
        self.keyframes_only = keyframes_only  # the decoder skips every non-key frame (skip_frame=NONKEY)
        self.stall_s = stall_s  # longest wait for the next frame
        self.progress = ReadProgress(bytes_read=0)

    def frames(self, selector: FrameSelector, seek_to: float | None = None) -> Iterator[tuple[np.ndarray, float]]:
        logger.info("decoding %s with PyAV", self.source)
        try:
            yield from self._decode(selector, seek_to if seek_to else None)
        except _SeekFailed as failure:
            logger.info("seeking in %s failed (%s); decoding from the start", self.source, failure)
            self.progress.damaged.clear()  # the next pass sees all of it again
            yield from self._decode(selector, None)

    def _decode(self, selector: FrameSelector, seek_to: float | None) -> Iterator[tuple[np.ndarray, float]]:
        last_pts: float | None = None
        with open_container(self.source, self.timeout_s) as container:
            stream = video_stream(container)
            stream.thread_type = "AUTO"  # frame + slice threads: sequential decode is the cost
            if self.keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
            offset = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            if seek_to is not None:  # the keyframe at or before seek_to; earlier frames are dropped
                container.seek(int((seek_to + offset) / stream.time_base), stream=stream, backward=True)
            damage = DamageLog(self.progress.damaged)
            packets = container.demux(stream)
            waiting_for_key, demux_errors, flushed = False, 0, False
            progressed = time.monotonic()
            while True:
                if time.monotonic() - progressed > self.stall_s:
                    raise DecodeTimeoutError(
                        f"{self.source}: no frame decoded for {self.stall_s:g} s (a stalled or spinning demuxer); "
                        f"stopped at {last_pts or 0:.1f} s (decode.stall_timeout_s)"
                    )
                try:
                    packet = next(packets)
                except StopIteration:  # demux() ended with its flush packet
                    flushed = True
                    break
                except (av.error.EOFError, IndexError):  # IndexError: PyAV 18, a stream appearing mid-file
                    break
                except av.error.ExitError as exc:  # a network read timed out: the server stopped sending
                    raise StreamTruncated(last_pts, f"the source stopped sending ({first_line(exc)})") from exc
                except av.error.FFmpegError as exc:  # unreadable container bytes: read on past them
                    if seek_to is not None and last_pts is None:
                        raise _SeekFailed(first_line(exc)) from exc
                    damage.bad(None, last_pts, first_line(exc))
                    demux_errors += 1
                    if demux_errors > MAX_DEMUX_ERRORS:
                        raise StreamTruncated(last_pts, first_line(exc)) from exc
                    packets = container.demux(stream)  # the container keeps its position
                    continue
                demux_errors = 0
                self.progress.bytes_read += packet.size
                at = float(packet.pts * packet.time_base) - offset if packet.pts is not None else None
                if self.keyframes_only and at is not None:  # frames not decoded still count as read
                    self.progress.stream_end = max(self.progress.stream_end or 0.0, at)
                if packet.size and packet.is_corrupt and not packet.is_keyframe:
                    damage.bad(at, last_pts, "a corrupt packet")
                    continue
                if waiting_for_key:
                    if packet.size and not packet.is_keyframe:
                        damage.bad(at, last_pts, "undecodable data (resynchronised at the next keyframe)")
                        continue
                    waiting_for_key = False
                    if packet.size:
                        stream.codec_context.flush_buffers()  # forget references into the damaged pictures
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    if seek_to is not None and last_pts is None:
                        raise _SeekFailed(first_line(exc)) from exc
                    damage.bad(at, last_pts, first_line(exc))
                    waiting_for_key = True
                    continue
                for frame in frames:
                    pts = self._seconds(frame, offset, last_pts)
                    if seek_to is not None and last_pts is None:
                        self._check_landing(pts, seek_to)
                    last_pts, progressed = pts, time.monotonic()
                    damage.good(pts)
                    self.progress.saw_frame(pts)
                    if selector.past_end(pts):
                        return
                    if selector.keep(pts):  # only kept frames are converted and resized
                        yield frame.to_ndarray(width=self.width, height=self.height, format="rgb24"), pts
            if not flushed:  # the frames the decoder still holds
                try:
                    for frame in stream.codec_context.decode(None):
                        pts = self._seconds(frame, offset, last_pts)
                        last_pts = pts
                        damage.good(pts)
                        self.progress.saw_frame(pts)
                        if selector.keep(pts) and not selector.past_end(pts):
                            yield frame.to_ndarray(width=self.width, height=self.height, format="rgb24"), pts
                except av.error.FFmpegError as exc:
                    damage.bad(None, last_pts, first_line(exc))
            ended = damage.close(self.progress.stream_end)
            if ended is not None:  # damage that no good frame followed: the stream is cut there
                raise StreamTruncated(last_pts, ended[1])

    def _check_landing(self, first_pts: float, seek_to: float) -> None:
        """Landing after the target means the seek skipped frames (HTTP without range support)."""
        if first_pts > seek_to + 2 * (self.interval or 0.1):
            raise _SeekFailed(f"landed at {first_pts:.2f} s, after the requested {seek_to:.2f} s")

    def _seconds(self, frame: av.VideoFrame, offset: float, previous: float | None) -> float:
        if frame.pts is not None:
            return float(frame.pts * frame.time_base) - offset
        # No timestamp (rare, e.g. raw streams): assume the average frame interval.
        return 0.0 if previous is None else previous + (self.interval or 0.0)
