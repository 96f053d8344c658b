"""Decode a video source into windows of frames sampled at a fixed rate, by presentation time.

Decoders: decord reads local files (it indexes every frame's timestamp up front, then batch-
decodes the chosen frames in order, stepping forward through the file); PyAV reads http(s) URLs
and takes over whenever decord cannot open or decode a file (it seeks once to the start, decodes
packets in order and converts/resizes only the kept frames). Neither seeks once per sampled frame.

Sampling rule (correct on variable-frame-rate video): sample times are t_k = t0 + k / fps, where
t0 is ``start`` or, without one, 0 (the stream's start). Each t_k takes the first frame whose
pts >= t_k; a frame is kept at most once, so in a gap longer than 1 / fps fewer frames are kept
rather than one frame repeated. Frames with pts >= ``end`` are never kept. pts are seconds from
the start of the video stream. See docs/decoding.md.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np

from heron.errors import (
    ConfigError,
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    ResolutionError,
    SourceError,
    SourceNotFoundError,
    SourceUnreachableError,
    TimeRangeError,
    UnsupportedCodecError,
)
from heron.pipeline.sources import Source, content_id, resolve_source, sniff_container
from heron.pipeline.types import FrameBatch

logger = logging.getLogger(__name__)

# pts are pts * time_base in float; this absorbs the rounding so a frame exactly on a sample
# time is kept, while staying far below any real frame interval.
_PTS_EPSILON = 1e-6  # seconds
# A file whose last frame ends this much before its stated duration was cut short; the slack
# also scales with the frame interval so sparse (slide-show, VFR) video does not trip it.
_TRUNCATION_SLACK_S = 0.5
_TRUNCATION_SLACK_FRAMES = 3


@dataclass(frozen=True)
class DecodeConfig:
    """How to sample and decode a video. Every field is checked when the config is built."""

    fps: float = 1.0  # sampled frames per second of video time (not the video's own fps)
    window_frames: int = 8  # frames per FrameBatch: the encoder's unit of work
    size: int | tuple[int, int] = 224  # int: short side (px), aspect kept; (h, w): exact; even
    max_resolution: int = 8192  # refuse videos wider or taller than this (pixels): guards memory
    decoder: Literal["auto", "decord", "pyav"] = "auto"  # auto: decord for files, PyAV for URLs
    url_timeout_s: float = 10.0  # seconds to wait on a URL (connect or read) before giving up

    def __post_init__(self) -> None:
        if isinstance(self.size, list):  # YAML gives lists
            object.__setattr__(self, "size", tuple(self.size))
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"fps must be a positive number of frames per second, got {self.fps}")
        if not (isinstance(self.window_frames, int) and self.window_frames >= 1):
            raise ConfigError(f"window_frames must be an integer >= 1, got {self.window_frames!r}")
        sides = self.size if isinstance(self.size, tuple) else (self.size,)
        even = all(isinstance(s, int) and s > 0 and s % 2 == 0 for s in sides)
        if not even or len(sides) != (2 if isinstance(self.size, tuple) else 1):
            raise ConfigError(
                f"size must be an even short side or an even (h, w) pair, got {self.size!r}"
            )
        if not (isinstance(self.max_resolution, int) and self.max_resolution >= 2):
            raise ConfigError(
                f"max_resolution must be an integer >= 2, got {self.max_resolution!r}"
            )
        if self.decoder not in ("auto", "decord", "pyav"):
            raise ConfigError(f"decoder must be 'auto', 'decord' or 'pyav', got {self.decoder!r}")
        if not self.url_timeout_s > 0:
            raise ConfigError(f"url_timeout_s must be positive, got {self.url_timeout_s}")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (nothing is decoded)."""

    duration: float | None  # seconds; None when the container does not say
    fps: float | None  # average frame rate; None when unknown
    width: int  # pixels
    height: int  # pixels
    codec: str  # FFmpeg decoder name, e.g. "h264"
    n_frames: int | None  # frame count from the container index; None when unknown


@dataclass
class DecodeStats:
    """What one pass of VideoDecoder did; read it after (or during) iteration."""

    decoder: str = ""  # "decord", "pyav", or "decord+pyav" when PyAV took over part-way
    fallback_reason: str | None = None  # why decord was not (or no longer) used
    frames_decoded: int = 0  # frames the decoder produced (decord: frames stepped over, estimated)
    frames_kept: int = 0  # sampled frames handed out in windows
    windows: int = 0  # FrameBatches handed out
    bytes_decoded: int | None = None  # compressed bytes fed to the decoder; decord does not say
    seconds_decoded: float = 0.0  # video time spanned by the decoded frames (s)
    wall_seconds: float = 0.0  # decoding time (s), not counting the caller's work between windows
    truncated_at: float | None = None  # video time (s) where corrupt or missing data stopped it
    truncation_reason: str | None = None  # the decoder's error, or "the stream ends early"
    first_pts: float | None = None  # pts (s) of the first decoded frame

    def saw_frame(self, pts: float) -> None:
        """Count one decoded frame at ``pts`` seconds."""
        self.frames_decoded += 1
        if self.first_pts is None:
            self.first_pts = pts
        self.seconds_decoded = max(self.seconds_decoded, pts - self.first_pts)


def output_size(width: int, height: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """(h, w) pixels a width x height video is resized to: both even; an int size keeps aspect."""
    if isinstance(size, tuple):
        return size
    scale = size / min(width, height)
    return _even(height * scale), _even(width * scale)


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


class _Sampler:
    """Decides which frames to keep, in pts order (the rule in the module docstring)."""

    def __init__(self, fps: float, start: float | None, end: float | None):
        self.step, self.end = 1.0 / fps, end
        self.t0 = self.next_time = start if start is not None else 0.0

    def past_end(self, pts: float) -> bool:
        return self.end is not None and pts >= self.end - _PTS_EPSILON

    def keep(self, pts: float) -> bool:
        """True if the frame at ``pts`` seconds is sampled; frames must come in pts order."""
        if self.past_end(pts) or pts < self.next_time - _PTS_EPSILON:
            return False
        self.skip_through(pts)
        return True

    def skip_through(self, pts: float) -> None:
        """Move to the first sample time after ``pts`` (a frame at ``pts`` was kept)."""
        k = math.floor((pts - self.t0) / self.step + _PTS_EPSILON) + 1  # integer k: no drift
        self.next_time = self.t0 + k * self.step


def probe(source: str | Source, *, url_timeout_s: float = 10.0) -> VideoInfo:
    """Read the container header of ``source`` (file path or http(s) URL) without decoding.

    Raises the typed errors of heron.errors: SourceNotFoundError, SourceUnreachableError,
    NotAVideoError (also: no video stream), UnsupportedCodecError, CorruptVideoError.
    """
    resolved = resolve_source(source)
    with _open(resolved, url_timeout_s) as container:
        return _video_info(resolved, container)


class VideoDecoder:
    """Windows of sampled, resized frames from one source; ``stats`` says what was done.

    The constructor resolves and probes the source, so bad input fails here, before iteration.
    Iterating decodes lazily (a long video streams window by window) and may be repeated.
    """

    def __init__(
        self,
        source: str | Source,
        cfg: DecodeConfig | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
        source_id: str | None = None,
    ):
        self.cfg = cfg or DecodeConfig()
        self.start, self.end = check_time_range(start, end)
        self.source = resolve_source(source)
        if self.cfg.decoder == "decord" and self.source.is_url:
            raise ConfigError(
                "decoder='decord' reads local files only; use 'auto' or 'pyav' for URLs"
            )
        self.info = probe(self.source, url_timeout_s=self.cfg.url_timeout_s)
        _check_resolution(self.source, self.info, self.cfg.max_resolution)
        self.out_height, self.out_width = output_size(
            self.info.width, self.info.height, self.cfg.size
        )
        self.source_id = source_id or content_id(self.source)
        self.stats = DecodeStats()

    def __iter__(self) -> Iterator[FrameBatch]:
        self.stats = DecodeStats()
        frames: list[np.ndarray] = []
        pts: list[float] = []
        clock = time.perf_counter()
        for frame, frame_pts in self._kept_frames():
            frames.append(frame)
            pts.append(frame_pts)
            if len(frames) == self.cfg.window_frames:
                self.stats.wall_seconds += time.perf_counter() - clock
                yield self._window(frames, pts)
                frames, pts, clock = [], [], time.perf_counter()
        self.stats.wall_seconds += time.perf_counter() - clock
        if frames:
            yield self._window(frames, pts)
        if self.stats.frames_kept == 0:
            raise self._no_frames_error()

    def _window(self, frames: list[np.ndarray], pts: list[float]) -> FrameBatch:
        batch = FrameBatch(
            source_id=self.source_id,
            index=self.stats.windows,
            frames=np.stack(frames),  # (T, H, W, 3) uint8
            pts=np.asarray(pts, dtype=np.float64),  # (T,) seconds
        )
        self.stats.windows += 1
        self.stats.frames_kept += len(frames)
        return batch

    def _kept_frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """Sampled frames (H, W, 3) uint8 with their pts in seconds, from decord and/or PyAV."""
        sampler = _Sampler(self.cfg.fps, self.start, self.end)
        use_decord = self.cfg.decoder == "decord" or (
            self.cfg.decoder == "auto" and not self.source.is_url
        )
        if use_decord:
            last_pts = None
            try:
                for frame, last_pts in _DecordReader(self).frames(sampler):
                    yield frame, last_pts
                return
            except _DecordFailure as failure:
                if self.cfg.decoder == "decord":
                    raise CorruptVideoError(
                        f"decord could not decode {self.source}: {failure}; "
                        "use decoder='auto' to fall back to PyAV"
                    ) from failure
                self.stats.fallback_reason = str(failure)
                self.stats.decoder = "decord+pyav" if last_pts is not None else ""
                sampler = _Sampler(self.cfg.fps, self.start, self.end)
                if last_pts is not None:
                    sampler.skip_through(last_pts)
                    logger.warning(
                        "decord failed at %.2f s of %s (%s); PyAV continues",
                        last_pts,
                        self.source,
                        failure,
                    )
                else:
                    logger.info("decord cannot read %s (%s); using PyAV", self.source, failure)
        yield from _PyAVReader(self).frames(sampler)

    def mark_truncated(self, at: float | None, reason: str) -> None:
        """Record that decoding stopped at ``at`` seconds on bad or missing data, and warn."""
        at = at if at is not None else (self.start or 0.0)
        self.stats.truncated_at, self.stats.truncation_reason = at, reason
        total = f"{self.info.duration:.1f} s" if self.info.duration else "unknown length"
        logger.warning(
            "decoded %.1f s of %s of %s; the rest is corrupt or missing (%s)",
            at,
            total,
            self.source,
            reason,
        )

    def check_complete(self, last_pts: float | None) -> None:
        """Flag truncation when decoding ended well before the duration the container states."""
        if self.stats.truncated_at is not None or last_pts is None or not self.info.duration:
            return
        expected = min(self.info.duration, self.end) if self.end is not None else self.info.duration
        slack = max(
            _TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRAMES / self.info.fps if self.info.fps else 0.0
        )
        if last_pts < expected - slack:
            self.mark_truncated(last_pts, "the stream ends early")

    def _no_frames_error(self) -> SourceError:
        if self.source.is_url and self.stats.frames_decoded == 0 and self.stats.truncation_reason:
            return SourceUnreachableError(
                f"no frame could be read from {self.source} ({self.stats.truncation_reason}); "
                "the connection dropped, or the server ignores range requests (which MP4 files "
                "with their index at the end need)"
            )
        if self.stats.truncated_at is not None:
            return CorruptVideoError(
                f"{self.source}: no frame could be decoded in the requested range; "
                f"the video is truncated or corrupt from {self.stats.truncated_at:.1f} s"
            )
        if self.start is not None or self.end is not None:
            length = f"{self.info.duration:.1f} s" if self.info.duration else "of unknown length"
            return EmptyVideoError(
                f"{self.source}: no frames between {self.start or 0:.1f} s and "
                f"{'the end' if self.end is None else f'{self.end:.1f} s'} (the video is {length})"
            )
        return EmptyVideoError(f"{self.source} has a video stream but no frames")


def iter_windows(
    source: str | Source,
    cfg: DecodeConfig | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    source_id: str | None = None,
) -> Iterator[FrameBatch]:
    """Yield FrameBatches of ``cfg.window_frames`` sampled frames (the last may be shorter).

    A generator: errors surface on the first ``next``. Use VideoDecoder to read stats afterwards.
    """
    yield from VideoDecoder(source, cfg, start=start, end=end, source_id=source_id)


# --- decoders ----------------------------------------------------------------------------------


class _DecordFailure(Exception):
    """decord could not open or decode the file; PyAV takes over."""


class _DecordReader:
    """decord: read the frame timestamp index, pick frames by pts, get_batch them in order."""

    def __init__(self, decoder: VideoDecoder):
        self.decoder, self.stats = decoder, decoder.stats

    def frames(self, sampler: _Sampler) -> Iterator[tuple[np.ndarray, float]]:
        reader, times = self._open()
        self.stats.decoder = "decord"
        logger.info("decoding %s with decord", self.decoder.source)
        chosen = [i for i, t in enumerate(times) if sampler.keep(float(t))]
        size = self.decoder.cfg.window_frames
        previous = chosen[0] - 1 if chosen else 0
        for first in range(0, len(chosen), size):
            indices = chosen[first : first + size]
            try:
                # Sorted indices: decord decodes forward through the file, seeking to a keyframe
                # only when that is shorter than decoding through the frames in between.
                batch = reader.get_batch(indices).asnumpy()  # (T, H, W, 3) uint8
            except Exception as exc:  # decord raises its own DECORDError/RuntimeError subclasses
                raise _DecordFailure(_first_line(exc)) from exc
            for index in range(previous + 1, indices[-1] + 1):
                self.stats.saw_frame(float(times[index]))
            previous = indices[-1]
            for index, frame in zip(indices, batch, strict=True):
                yield frame, float(times[index])
        if len(times):
            self.decoder.check_complete(float(times[-1]))

    def _open(self):
        try:
            import decord  # optional at runtime: images without it still decode with PyAV
        except ImportError as exc:
            raise _DecordFailure("decord is not installed") from exc
        try:
            reader = decord.VideoReader(
                str(self.decoder.source.path),
                width=self.decoder.out_width,
                height=self.decoder.out_height,
            )
            times = reader.get_frame_timestamp(range(len(reader)))[:, 0].astype(
                np.float64
            )  # (N,) s
        except Exception as exc:  # decord raises its own DECORDError/RuntimeError subclasses
            raise _DecordFailure(_first_line(exc)) from exc
        return reader, times


class _SeekFailed(Exception):
    """Nothing decoded after a seek; PyAV decodes again from the start."""


class _PyAVReader:
    """PyAV: seek once to the start, decode packets in order, convert only the kept frames."""

    def __init__(self, decoder: VideoDecoder):
        self.decoder, self.stats = decoder, decoder.stats

    def frames(self, sampler: _Sampler) -> Iterator[tuple[np.ndarray, float]]:
        """Kept frames (H, W, 3) uint8 and pts (s), from the sampler's next sample time on."""
        self.stats.decoder = self.stats.decoder or "pyav"
        self.stats.bytes_decoded = self.stats.bytes_decoded or 0
        logger.info("decoding %s with PyAV", self.decoder.source)
        # Seek to a start time, or to where decord stopped.
        seek_to = sampler.next_time if sampler.next_time > 0 else None
        try:
            yield from self._decode(sampler, seek_to)
        except _SeekFailed as failure:
            # Servers that ignore range requests hand FFmpeg the wrong bytes after a seek.
            logger.info(
                "seeking in %s failed (%s); decoding from the start", self.decoder.source, failure
            )
            yield from self._decode(sampler, None)

    def _decode(
        self, sampler: _Sampler, seek_to: float | None
    ) -> Iterator[tuple[np.ndarray, float]]:
        last_pts = None
        with _open(self.decoder.source, self.decoder.cfg.url_timeout_s) as container:
            stream = _video_stream(container)
            stream.thread_type = "AUTO"  # frame + slice threads: sequential decode is the cost
            offset = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            if seek_to is not None:  # the keyframe at or before seek_to; earlier frames are dropped
                container.seek(
                    int((seek_to + offset) / stream.time_base), stream=stream, backward=True
                )
            try:
                for packet in container.demux(stream):
                    self.stats.bytes_decoded += packet.size
                    for frame in packet.decode():
                        if seek_to is not None and last_pts is None:
                            self._check_landing(self._seconds(frame, offset, None), seek_to)
                        last_pts = self._seconds(frame, offset, last_pts)
                        self.stats.saw_frame(last_pts)
                        if sampler.past_end(last_pts):
                            return
                        if sampler.keep(last_pts):  # only kept frames are converted and resized
                            yield self._rgb(frame), last_pts
            except av.error.FFmpegError as exc:
                if seek_to is not None and last_pts is None:
                    raise _SeekFailed(_first_line(exc)) from exc
                self.decoder.mark_truncated(last_pts, _first_line(exc))
                return
        self.decoder.check_complete(last_pts)

    def _check_landing(self, first_pts: float, seek_to: float) -> None:
        """A backward seek lands on a keyframe at or before its target; later means it went wrong.

        Over HTTP from a server that ignores range requests FFmpeg can "seek" without error and
        resume at a later cluster, silently losing the frames in between.
        """
        interval = 1.0 / self.decoder.info.fps if self.decoder.info.fps else 0.1
        if first_pts > seek_to + 2 * interval:
            raise _SeekFailed(f"landed at {first_pts:.2f} s, after the requested {seek_to:.2f} s")

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB at the output size: one swscale call converts and resizes."""
        return frame.to_ndarray(
            width=self.decoder.out_width, height=self.decoder.out_height, format="rgb24"
        )

    def _seconds(self, frame: av.VideoFrame, offset: float, previous: float | None) -> float:
        if frame.pts is not None:
            return float(frame.pts * frame.time_base) - offset
        # No timestamp (rare, e.g. raw streams): assume the average frame interval.
        step = 1.0 / self.decoder.info.fps if self.decoder.info.fps else 0.0
        return 0.0 if previous is None else previous + step


# --- opening, probing and error mapping ---------------------------------------------------------


def _open(source: Source, timeout_s: float) -> av.container.InputContainer:
    """av.open with Heron's typed errors instead of FFmpeg's."""
    try:
        return av.open(source.uri, mode="r", timeout=timeout_s if source.is_url else None)
    except av.error.FFmpegError as exc:
        raise map_open_error(exc, source) from exc


def map_open_error(exc: Exception, source: Source) -> SourceError:
    """The typed error for an exception PyAV raised while opening ``source``."""
    detail = _first_line(exc)
    if isinstance(exc, (av.error.DecoderNotFoundError, av.error.PatchWelcomeError)):
        return UnsupportedCodecError(
            f"{source}: FFmpeg cannot decode this stream ({detail}); re-encode it to H.264"
        )
    if isinstance(exc, av.error.FileNotFoundError) and not source.is_url:
        return SourceNotFoundError(f"video file not found: {source}")
    if source.is_url:
        if isinstance(exc, (av.error.InvalidDataError, av.error.EOFError)):
            return NotAVideoError(f"{source} did not return a video FFmpeg can read ({detail})")
        return SourceUnreachableError(
            f"cannot open {source}: {detail}; check the URL and that the server is up"
        )
    if isinstance(exc, av.error.PermissionError):
        return SourceUnreachableError(f"cannot read {source}: permission denied")
    kind = sniff_container(source.path)
    if kind == "empty":
        return NotAVideoError(f"{source} is empty (0 bytes), not a video")
    if kind == "text":
        return NotAVideoError(f"{source} is a text file, not a video")
    if kind == "unknown":
        return NotAVideoError(
            f"{source} is not a video: FFmpeg does not recognise its format ({detail})"
        )
    return CorruptVideoError(
        f"{source} looks like {kind} but cannot be read: it is truncated or corrupt ({detail})"
    )


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream that is not cover art; NotAVideoError when there is none."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
    raise NotAVideoError(f"{container.name} has no video stream (streams: {kinds})")


def _video_info(source: Source, container: av.container.InputContainer) -> VideoInfo:
    stream = _video_stream(container)
    context = stream.codec_context
    if context is None:  # FFmpeg knows the stream is video but has no decoder for its codec
        raise UnsupportedCodecError(
            f"{source}: the video codec is unknown to this FFmpeg build; re-encode it to H.264"
        )
    if stream.duration is not None:
        duration = float(stream.duration * stream.time_base)
    else:
        duration = container.duration / av.time_base if container.duration else None
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(
        duration=duration,
        fps=float(rate) if rate else None,
        width=context.width,
        height=context.height,
        codec=context.name,
        n_frames=stream.frames or None,
    )


def check_time_range(start: float | None, end: float | None) -> tuple[float | None, float | None]:
    """(start, end) in seconds as floats; TimeRangeError if negative, not finite or start >= end."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise TimeRangeError(f"{name} must be a non-negative number of seconds, got {value}")
    if start is not None and end is not None and start >= end:
        raise TimeRangeError(f"start ({start} s) must be before end ({end} s)")
    return (None if start is None else float(start)), (None if end is None else float(end))


def _check_resolution(source: Source, info: VideoInfo, limit: int) -> None:
    if info.width <= 0 or info.height <= 0:
        raise ResolutionError(
            f"{source} reports a resolution of {info.width}x{info.height}; the file is broken"
        )
    if max(info.width, info.height) > limit:
        raise ResolutionError(
            f"{source} is {info.width}x{info.height}, beyond max_resolution {limit}; "
            "downscale it first or raise max_resolution"
        )


def _first_line(exc: Exception) -> str:
    """A one-line message for ``exc``, without decord's "[12:00:00] /src/file.cc:42: " prefixes."""
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
