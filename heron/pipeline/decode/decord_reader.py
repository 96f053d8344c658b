"""decord backend: read the frame timestamp index, pick frames by pts, ``get_batch`` them in order.

It decodes forward through the file (sorted indices: decord seeks to a keyframe only when that is
shorter than decoding through the frames in between) and never seeks once per sampled frame.
Local files only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from heron.pipeline.decode.container import VideoInfo, first_line
from heron.pipeline.decode.reader import FrameSelector, ReaderFailed, ReadProgress

logger = logging.getLogger(__name__)


class DecordReader:
    """Frames of a local file at ``height`` x ``width`` (resized by decord), ``batch`` per get_batch."""

    name = "decord"

    def __init__(self, path: Path, *, height: int, width: int, batch: int, duration: float | None = None):
        self.path, self.height, self.width, self.batch = path, height, width, batch
        self.duration = duration  # what the container states (s), to check decord's timestamps against
        self.progress = ReadProgress()

    def frames(self, selector: FrameSelector, seek_to: float | None = None) -> Iterator[tuple[np.ndarray, float]]:
        reader, times = self._open()
        logger.info("decoding %s with decord", self.path)
        chosen = [i for i, t in enumerate(times) if selector.keep(float(t))]  # seek_to: the selector's job
        previous = chosen[0] - 1 if chosen else 0
        for first in range(0, len(chosen), self.batch):
            indices = chosen[first : first + self.batch]
            try:
                batch = reader.get_batch(indices).asnumpy()  # (T, H, W, 3) uint8
            except Exception as exc:  # decord raises its own DECORDError/RuntimeError subclasses
                raise ReaderFailed(first_line(exc)) from exc
            for index in range(previous + 1, indices[-1] + 1):
                self.progress.saw_frame(float(times[index]))
            previous = indices[-1]
            for index, frame in zip(indices, batch, strict=True):
                yield frame, float(times[index])
        if len(times):
            self.progress.stream_end = float(times[-1])

    def _open(self):
        try:
            import decord  # optional at runtime: images without it still decode with PyAV
        except ImportError as exc:
            raise ReaderFailed("decord is not installed") from exc
        try:
            reader = decord.VideoReader(str(self.path), width=self.width, height=self.height)
            times = reader.get_frame_timestamp(range(len(reader)))[:, 0].astype(np.float64)  # (N,) s
        except Exception as exc:  # decord raises its own DECORDError/RuntimeError subclasses
            raise ReaderFailed(first_line(exc)) from exc
        self._check_times(times)
        return reader, times

    def _check_times(self, times: np.ndarray) -> None:
        """decord's index must be plausible (finite, in order, within the stated duration), or PyAV reads."""
        if not len(times):
            return
        late = self.duration is not None and times[-1] > self.duration + 2.0
        if not np.isfinite(times).all() or times[0] < -1.0 or late or (np.diff(times) < -1e-6).any():
            raise ReaderFailed(
                f"decord's frame timestamps are not plausible (first {times[0]:.3g} s, last {times[-1]:.3g} s)"
            )


# What decord (its bundled FFmpeg 4.1) reads right; elsewhere it returns shifted frames (MPEG-TS),
# garbage timestamps (MPEG-PS) or cannot open the stream (AV1): docs/decoding.md.
DECORD_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi")
DECORD_CODECS = ("h264", "hevc", "vp9", "vp8", "mpeg4", "mjpeg", "mpeg2video")


def decord_unsuited(info: VideoInfo) -> str | None:
    """Why decord should not read a file with this header (None: it may)."""
    if info.format and info.format not in DECORD_FORMATS:
        return f"decord does not read {info.format} reliably"
    if info.codec not in DECORD_CODECS:
        return f"decord does not read {info.codec} video"
    return None
