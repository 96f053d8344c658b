"""Decode a video source into windows of frames sampled at a fixed rate, by presentation time.

``VideoDecoder`` owns everything above the backends: it probes the source, sampling (a
``FrameSampler``, the rule in ``sampling.py``), the stats, and which backend reads. decord reads
local files (its timestamp index lets it batch-decode only the chosen frames); PyAV reads URLs
and takes over whenever decord cannot open or decode a file, from where decord stopped. Neither
seeks once per sampled frame. See docs/decoding.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from heron.config import DecodeConfig
from heron.errors import (
    ConfigError,
    CorruptVideoError,
    EmptyVideoError,
    SourceError,
    SourceUnreachableError,
    UnsupportedCodecError,
)
from heron.pipeline.decode.container import check_resolution, probe
from heron.pipeline.decode.damage import merged
from heron.pipeline.decode.decord_reader import DecordReader, decord_unsuited
from heron.pipeline.decode.pyav_reader import PyAVReader
from heron.pipeline.decode.reader import FrameReader, ReaderFailed, StreamTruncated
from heron.pipeline.decode.sampling import FrameSampler, output_size
from heron.pipeline.decode.torchcodec_reader import NO_GPU, TorchcodecReader, gpu_decode_unavailable, gpu_unsuited
from heron.pipeline.sources import Source, content_id, resolve_source
from heron.pipeline.windows import check_time_range
from heron.types import FrameBatch

logger = logging.getLogger(__name__)

# A file whose last frame ends this much before its stated duration was cut short; the slack
# also scales with the frame interval so sparse (slide-show, VFR) video does not trip it.
_TRUNCATION_SLACK_S = 0.5
_TRUNCATION_SLACK_FRAMES = 3
_DAMAGE_MERGE_S = 1.0  # damaged spans closer than this are reported as one


@dataclass
class DecodeStats:
    """What one pass of VideoDecoder did; read it after (or during) iteration."""

    decoder: str = ""  # "nvdec", "decord", "pyav", or "decord+pyav" (etc.) when one took over part-way
    fallback_reason: str | None = None  # why the GPU or decord was not (or no longer) used; "; " joins reasons
    frames_decoded: int = 0  # frames the decoder produced (decord: frames stepped over, estimated)
    frames_kept: int = 0  # sampled frames handed out in windows
    windows: int = 0  # FrameBatches handed out
    bytes_decoded: int | None = None  # compressed bytes fed to the decoder; decord does not say
    seconds_decoded: float = 0.0  # video time spanned by the decoded frames (s)
    wall_seconds: float = 0.0  # decoding time (s), not counting the caller's work between windows
    truncated_at: float | None = None  # video time (s) where corrupt or missing data stopped it
    truncation_reason: str | None = None  # the decoder's error, or "the stream ends early"
    first_pts: float | None = None  # pts (s) of the first decoded frame
    damaged: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, reason) skipped, s


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
        if self.cfg.decoder in ("decord", "torchcodec") and self.source.is_url:
            raise ConfigError(f"decoder={self.cfg.decoder!r} reads local files only; use 'auto' or 'pyav' for URLs")
        self.info = probe(self.source, url_timeout_s=self.cfg.url_timeout_s)
        check_resolution(self.source, self.info, self.cfg.max_resolution)
        if self.cfg.decoder == "torchcodec" and (
            why := gpu_decode_unavailable() or gpu_unsuited(self.source, self.info)
        ):
            raise UnsupportedCodecError(f"decoder='torchcodec' cannot read {self.source}: {why}; use decoder='auto'")
        self.out_height, self.out_width = output_size(self.info.width, self.info.height, self.cfg.size)
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
        if self.stats.damaged:
            logger.warning(
                "%s: skipped undecodable data at %s; answers about those moments may be wrong",
                self.source,
                ", ".join(f"{a:.1f}–{b:.1f} s" for a, b, _ in self.stats.damaged[:5]),
            )

    def _window(self, frames: list[np.ndarray], pts: list[float]) -> FrameBatch:
        batch = FrameBatch(
            source_id=self.source_id,
            index=self.stats.windows,
            frames=np.stack(frames),  # (T, H, W, 3) uint8
            pts=np.asarray(pts, dtype=np.float64),
        )  # (T,) seconds
        self.stats.windows += 1
        self.stats.frames_kept += len(frames)
        return batch

    # --- backends -------------------------------------------------------------------------------

    def _kept_frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """Sampled frames (H, W, 3) uint8 with their pts in seconds: the GPU, decord and/or PyAV."""
        sampler = FrameSampler(self.cfg.fps, self.start, self.end)
        for choose in (self._gpu_reader, self._decord_reader):  # each hands over to the next, then PyAV
            reader = choose()
            if reader is None:
                continue
            try:
                yield from self._read(reader, sampler, None)
                return
            except ReaderFailed as failure:
                if self.cfg.decoder != "auto":  # an explicit backend has no fallback
                    raise CorruptVideoError(
                        f"{reader.name} could not decode {self.source}: {failure}; use decoder='auto' to fall back"
                    ) from failure
                sampler = self._hand_over(reader, failure)
        pyav = PyAVReader(
            self.source,
            height=self.out_height,
            width=self.out_width,
            fps=self.info.fps,
            timeout_s=self.cfg.url_timeout_s,
            keyframes_only=self.cfg.keyframes,
            stall_s=self.cfg.stall_timeout_s,
        )
        yield from self._read(pyav, sampler, sampler.next_time if sampler.next_time > 0 else None)

    def _gpu_reader(self) -> TorchcodecReader | None:
        """NVDEC for local files whose codec it takes, when this process has a GPU and torchcodec."""
        if self.cfg.decoder not in ("auto", "torchcodec"):
            return None
        why = gpu_decode_unavailable() or gpu_unsuited(self.source, self.info)
        if why:
            if why not in NO_GPU:  # a machine without a GPU is no fallback: not reported
                self._fell_back(f"not on the GPU: {why}")
                logger.info("%s: not decoded on the GPU: %s", self.source, why)
            return None
        return TorchcodecReader(
            self.source,
            height=self.out_height,
            width=self.out_width,
            batch=self.cfg.window_frames,
            keyframes_only=self.cfg.keyframes,
        )

    def _decord_reader(self) -> DecordReader | None:
        """decord for local files it reads right (``decord_unsuited``), PyAV for the rest."""
        if self.cfg.keyframes or self.source.is_url or self.cfg.decoder == "torchcodec":
            return None
        why = None
        if self.cfg.decoder != "decord":
            why = decord_unsuited(self.info) if self.cfg.decoder == "auto" else "decoder: pyav"
        if why:
            self._fell_back(why)
            logger.info("%s: %s; using PyAV", self.source, why)
            return None
        return DecordReader(
            self.source.path,
            height=self.out_height,
            width=self.out_width,
            batch=self.cfg.window_frames,
            duration=self.info.duration,
        )

    def _fell_back(self, why: str) -> None:
        reason = self.stats.fallback_reason
        self.stats.fallback_reason = why if not reason else f"{reason}; {why}"

    def _read(
        self, reader: FrameReader, sampler: FrameSampler, seek_to: float | None
    ) -> Iterator[tuple[np.ndarray, float]]:
        """Run one backend, folding its progress into the stats however it ends."""
        self.stats.decoder = reader.name if not self.stats.decoder else f"{self.stats.decoder}+{reader.name}"
        try:
            yield from reader.frames(sampler, seek_to)
        except StreamTruncated as truncated:
            self._mark_truncated(truncated.at, truncated.reason)
        else:
            self._check_complete(reader.progress.stream_end)
        finally:
            self._fold(reader)

    def _hand_over(self, reader: FrameReader, failure: ReaderFailed) -> FrameSampler:
        """A backend failed: the next continues after the last frame it gave, with a fresh sampler."""
        self._fell_back(str(failure))
        sampler = FrameSampler(self.cfg.fps, self.start, self.end)
        last = reader.progress.last_pts
        following = "PyAV" if reader.name == "decord" else "a CPU decoder"
        if last is None:  # it read nothing: the next one's is a first pass, not a hand-over
            self.stats.decoder = self.stats.decoder.rpartition("+")[0]
            logger.info("%s cannot read %s (%s); using %s", reader.name, self.source, failure, following)
        else:
            sampler.skip_through(last)
            logger.warning(
                "%s failed at %.2f s of %s (%s); %s continues", reader.name, last, self.source, failure, following
            )
        return sampler

    def _fold(self, reader: FrameReader) -> None:
        progress, stats = reader.progress, self.stats
        stats.frames_decoded += progress.frames_decoded
        if progress.bytes_read is not None:
            stats.bytes_decoded = (stats.bytes_decoded or 0) + progress.bytes_read
        stats.damaged = merged(stats.damaged + list(progress.damaged), gap_s=_DAMAGE_MERGE_S)
        if progress.first_pts is not None:
            stats.first_pts = (
                progress.first_pts if stats.first_pts is None else min(stats.first_pts, progress.first_pts)
            )
            stats.seconds_decoded = max(stats.seconds_decoded, (progress.last_pts or 0.0) - stats.first_pts)

    # --- how it ended ---------------------------------------------------------------------------

    def _mark_truncated(self, at: float | None, reason: str) -> None:
        """Record that decoding stopped at ``at`` seconds on bad or missing data, and warn."""
        at = at if at is not None else (self.start or 0.0)
        self.stats.truncated_at, self.stats.truncation_reason = at, reason
        total = f"{self.info.duration:.1f} s" if self.info.duration else "unknown length"
        logger.warning(
            "decoded %.1f s of %s of %s; the rest is corrupt or missing (%s)", at, total, self.source, reason
        )

    def _check_complete(self, last_pts: float | None) -> None:
        """Flag truncation when decoding ended well before the duration the container states."""
        if self.stats.truncated_at is not None or last_pts is None or not self.info.duration:
            return
        expected = min(self.info.duration, self.end) if self.end is not None else self.info.duration
        slack = max(_TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRAMES / self.info.fps if self.info.fps else 0.0)
        if last_pts < expected - slack:
            self._mark_truncated(last_pts, "the stream ends early")

    def _no_frames_error(self) -> SourceError:
        if self.source.is_url and self.stats.frames_decoded == 0 and self.stats.truncation_reason:
            return SourceUnreachableError(
                f"no frame could be read from {self.source} ({self.stats.truncation_reason}); "
                "the connection dropped, or the server ignores range requests (which MP4 files "
                "with their index at the end need)"
            )
        stated = self.info.n_frames or (self.info.duration or 0) > 0
        if self.stats.frames_decoded == 0 and stated and self.stats.truncated_at is None and self.start is None:
            return CorruptVideoError(
                f"{self.source}: its header states "
                + (f"{self.info.n_frames} frames" if self.info.n_frames else f"{self.info.duration:.1f} s")
                + " but no frame could be decoded: it is truncated or corrupt"
            )
        if self.stats.truncated_at is not None:
            return CorruptVideoError(
                f"{self.source}: no frame could be decoded in the requested range; "
                f"the video is truncated or corrupt from {self.stats.truncated_at:.1f} s"
            )
        if self.start is not None or self.end is not None:
            length = f"{self.info.duration:.1f} s" if self.info.duration else "of unknown length"
            end = "the end" if self.end is None else f"{self.end:.1f} s"
            return EmptyVideoError(
                f"{self.source}: no frames between {self.start or 0:.1f} s and {end} (the video is {length})"
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
