"""Live sources: frames of a camera or stream with their stream time, across reconnects, forever.

A live source is an RTSP (TCP or UDP transport), HTTP(S) (MPEG-TS, FLV, MJPEG, HLS ``.m3u8``) URL,
a capture device (``/dev/video0``), or a local file played at real-time speed (``realtime``, for
demos and tests). ``LiveSource.frames`` reads it until stopped:

- every open and every read is bounded (``open_timeout_s``, ``read_timeout_s``): a server that
  accepts but never sends cannot hang it;
- a dropped or failed connection is retried forever, with exponential backoff and jitter;
- stream time stays monotonic across reconnects and restarts: within a connection it follows the
  source's pts, anchored at the wall-clock moment the connection's first frame arrived (a new
  RTSP session restarts its pts at 0; pts that jump are re-anchored); ``started_at`` (UTC) + stream
  time is the frame's wall-clock time, which alerts carry;
- each gap (from the last frame before a drop to the first frame after it) is reported with its
  reason through ``on_gap``.

A file played in real time keeps the file's own times and ends with the file.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np

from heron.config import LiveConfig
from heron.errors import SourceError, SourceNotFoundError, UnsupportedSourceError
from heron.pipeline.decode.container import first_line, open_container, video_stream
from heron.pipeline.decode.reader import FrameSelector
from heron.pipeline.decode.sampling import output_size
from heron.pipeline.sources import Source

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "rtmp", "srt")
_REANCHOR_S = 10.0  # pts that disagree with the wall clock by more than this are re-anchored


@dataclass(frozen=True)
class Gap:
    """Stream time (s) without frames: [start, end], and why (a drop, a reconnect, skipped windows)."""

    start: float
    end: float
    reason: str


@dataclass(frozen=True)
class LiveSpec:
    """What to read: ``uri`` is the URL, device or file; ``realtime``: a file paced at real-time speed."""

    uri: str
    kind: str  # "url" | "device" | "file"
    realtime: bool = False

    @property
    def label(self) -> str:
        parts = urlsplit(self.uri)
        if parts.password:  # never show a camera's password
            return self.uri.replace(f":{parts.password}@", ":***@")
        return self.uri


def live_spec(source: str, *, realtime: bool = False) -> LiveSpec:
    """Classify a live source; typed errors for what cannot be one."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in LIVE_SCHEMES:
        return LiveSpec(source, "url")
    if len(scheme) > 1:
        raise UnsupportedSourceError(
            f"{source}: '{scheme}://' is not a live source Heron reads "
            f"(schemes: {', '.join(LIVE_SCHEMES)}, a /dev/video device or a file)"
        )
    if source.startswith("/dev/video"):
        return LiveSpec(source, "device")
    path = Path(source).expanduser()
    if not path.is_file():
        raise SourceNotFoundError(f"no live source {source}: not a URL, a capture device or an existing file")
    if not realtime:
        raise UnsupportedSourceError(
            f"{source} is a file: play it as a live stream with realtime (--realtime), or ask about it as a video"
        )
    return LiveSpec(str(path.resolve()), "file", realtime=True)


class LiveSource:
    """Frames of a live source, sampled by a ``FrameSelector`` on stream time (see the module docstring).

    size: the decode size (``DecodeConfig.size``). started_at: UTC (unix s) of stream time 0, so a
    restarted reader continues the same timeline; None: now. on_gap(Gap) and on_reconnect() are
    called from the reading thread. stop: set it to end ``frames`` at the next frame or wait.
    """

    def __init__(
        self,
        spec: LiveSpec,
        cfg: LiveConfig,
        *,
        size,
        started_at: float | None = None,
        resume_at: float = 0.0,
        on_gap: Callable[[Gap], None] | None = None,
        on_reconnect: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        wall: Callable[[], float] = time.time,
    ):
        self.spec, self.cfg, self.size = spec, cfg, size
        self.wall = wall
        self.started_at = wall() if started_at is None else started_at
        self.on_gap = on_gap or (lambda gap: None)
        self.on_reconnect = on_reconnect or (lambda reason: None)
        self.stop = stop or threading.Event()
        self.last_t: float | None = resume_at if resume_at > 0 else None  # stream time of the last frame
        self.frames_read = 0
        self.connections = 0

    @property
    def now(self) -> float:
        """The live edge in stream time (s)."""
        return self.wall() - self.started_at

    def frames(self, selector: FrameSelector) -> Iterator[tuple[np.ndarray, float]]:
        """Kept frames (H, W, 3) uint8 with their stream time (s), until ``stop`` (or a file's end)."""
        failures = 0
        reason = "start"
        while not self.stop.is_set():
            gap_from = self.last_t
            try:
                for frame, t in self._session(selector):
                    if gap_from is not None and reason != "start":
                        self.on_gap(Gap(gap_from, t, reason))
                        gap_from = None
                    failures, reason = 0, "start"
                    yield frame, t
                if self.spec.kind == "file":
                    return  # a file played in real time ends with the file
                reason = "the source closed the connection"
            except (SourceError, av.error.FFmpegError, OSError) as error:
                reason = f"{type(error).__name__}: {first_line(error)}"
                failures += 1
            if self.stop.is_set():
                return
            if self.connections:
                self.on_reconnect(reason)
            wait = self._backoff(failures)
            log.warning("live source %s: %s; reconnecting in %.1f s", self.spec.label, reason, wait)
            if self.stop.wait(wait):
                return

    def _backoff(self, failures: int) -> float:
        base = min(self.cfg.reconnect_max_s, self.cfg.reconnect_initial_s * 2 ** max(0, failures - 1))
        return base * random.uniform(1 - self.cfg.reconnect_jitter, 1 + self.cfg.reconnect_jitter)

    def _session(self, selector: FrameSelector) -> Iterator[tuple[np.ndarray, float]]:
        container = self._open()
        self.connections += 1
        try:
            stream = video_stream(container)
            stream.thread_type = "AUTO"
            context = stream.codec_context
            height, width = output_size(context.width or 2, context.height or 2, self.size)
            by_arrival = (container.format.name or "") in ("mpjpeg", "video4linux2,v4l2")  # no usable pts
            clock = _SessionClock(self, realtime=self.spec.realtime, by_arrival=by_arrival)
            if self.spec.kind == "file" and self.last_t:  # a restarted reader resumes where it was
                container.seek(
                    int(max(0.0, self.last_t - 1.0) / stream.time_base) + (stream.start_time or 0),
                    stream=stream,
                    backward=True,
                )
            for frame in container.decode(stream):
                if self.stop.is_set():
                    return
                t = clock.time_of(frame)
                if t is None:  # already read before a restart
                    continue
                self.frames_read += 1
                if selector.keep(t):
                    yield frame.to_ndarray(width=width, height=height, format="rgb24"), t
        finally:
            container.close()

    def _open(self):
        source = Source(uri=self.spec.uri, kind="file" if self.spec.kind == "file" else "url")
        options = {"analyzeduration": str(self.cfg.analyzeduration_us), "probesize": str(self.cfg.probesize)}
        if self.spec.uri.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.cfg.rtsp_transport
        fmt = self.cfg.format or ("v4l2" if self.spec.kind == "device" else None)
        if self.spec.kind == "file":
            return open_container(source, self.cfg.open_timeout_s)
        try:
            return av.open(
                self.spec.uri,
                mode="r",
                format=fmt,
                options=options,
                metadata_errors="replace",
                timeout=(self.cfg.open_timeout_s, self.cfg.read_timeout_s),
            )
        except av.error.FFmpegError as error:
            from heron.errors import SourceUnreachableError

            raise SourceUnreachableError(f"cannot open {self.spec.label}: {first_line(error)}") from None


class _SessionClock:
    """Stream time of each frame of one connection (monotonic across connections)."""

    def __init__(self, source: LiveSource, *, realtime: bool, by_arrival: bool):
        self.source, self.realtime, self.by_arrival = source, realtime, by_arrival
        self.anchor: tuple[float, float] | None = None  # (stream time, pts) of the anchor frame
        self.paced_from: float | None = None  # realtime files: monotonic clock at the first frame

    def time_of(self, frame: av.VideoFrame) -> float | None:
        """The frame's stream time, or None for a file's frame read before a restart."""
        last = self.source.last_t
        pts = None if frame.pts is None or frame.time_base is None else float(frame.pts * frame.time_base)
        if self.source.spec.kind == "file":
            pts = pts if pts is not None else (last or 0.0) + 0.04
            if last is not None and pts <= last:
                return None
            t = self._paced(pts) if self.realtime else pts
        elif self.by_arrival or pts is None:
            t = self.source.now
        else:
            t = self._from_pts(pts)
        if last is not None and t <= last:  # monotonic, whatever the source says
            t = last + 1e-3
        self.source.last_t = t
        return t

    def _from_pts(self, pts: float) -> float:
        now = self.source.now
        if self.anchor is None or abs(self.anchor[0] + pts - self.anchor[1] - now) > _REANCHOR_S:
            self.anchor = (now, pts)
        return self.anchor[0] + pts - self.anchor[1]

    def _paced(self, pts: float) -> float:
        """A file played in real time: wait until the frame's time has come; its time is its pts."""
        if self.paced_from is None:
            self.paced_from = time.monotonic() - pts
            if self.source.last_t is None:  # a fresh playback: stream time 0 is now, minus the first pts
                self.source.started_at = self.source.wall() - pts
        delay = self.paced_from + pts - time.monotonic()
        if delay > 0:
            self.source.stop.wait(delay)
        return pts
