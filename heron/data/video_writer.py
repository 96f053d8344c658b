"""Write uint8 frames to a real video file with PyAV (used by tests, demos and synthetic data)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from heron.data.atomic import atomic_path

# Container suffix -> (codec, pixel format) that FFmpeg's bundled encoders in PyAV provide.
DEFAULT_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mov": ("libx264", "yuv420p"),
    ".mkv": ("libx265", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),
}


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: float = 25.0,
    pts_seconds: np.ndarray | None = None,
    codec: str | None = None,
    gop: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` uint8 [T, H, W, 3] (RGB) into ``path``; the suffix picks the container.

    ``pts_seconds`` [T] gives each frame's presentation time, for variable-frame-rate files;
    by default frames are spaced ``1 / fps``. ``gop`` sets the keyframe interval (frames);
    ``options`` are the encoder's own (e.g. ``{"bf": "0"}``: no B-frames, as live streams send).
    H and W must be even (4:2:0 chroma). The file appears whole or not at all: it is written
    under a temporary name of this process and renamed, so concurrent writers never mix.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    codec_name, pix_fmt = DEFAULT_CODECS.get(path.suffix.lower(), ("libx264", "yuv420p"))
    codec_name = codec or codec_name
    time_base = Fraction(1, 1000) if pts_seconds is not None else Fraction(1, round(fps))
    # Concurrent writers of one file never mix: each encodes under its own name, then renames.
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(codec_name, rate=Fraction(round(fps * 1000), 1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.time_base = time_base
        # The encoder keeps its own time base (1/fps by default); without this, VFR pts are
        # rounded to 1/fps ticks, collide, and the muxer rejects non-increasing timestamps.
        stream.codec_context.time_base = time_base
        if codec_name == "libx265":
            # libx265 prints its banner and stats to stderr at "info" level on every file.
            stream.codec_context.options = {"x265-params": "log-level=error"}
        if gop is not None:
            stream.codec_context.gop_size = gop
        if options:
            stream.codec_context.options = {**stream.codec_context.options, **options}
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            seconds = pts_seconds[i] if pts_seconds is not None else i / fps
            video_frame.pts = int(round(seconds / time_base))
            video_frame.time_base = time_base
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_video_chunks(
    path: str | Path, chunks: Iterable[np.ndarray], *, fps: float, size: int | tuple[int, int], codec: str | None = None
) -> Path:
    """Encode frames that come in chunks (uint8 [n, H, W, 3] each, ``size`` = H = W or (H, W)) at a
    constant ``fps``, so a video of any length is written without holding it in memory."""
    path = Path(path)
    height, width = (size, size) if isinstance(size, int) else size
    codec_name, pix_fmt = DEFAULT_CODECS.get(path.suffix.lower(), ("libx264", "yuv420p"))
    time_base = Fraction(1, round(fps))
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(codec or codec_name, rate=Fraction(round(fps * 1000), 1000))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        written = 0
        for chunk in chunks:
            if chunk.dtype != np.uint8 or chunk.shape[1:] != (height, width, 3):
                raise ValueError(f"frames must be uint8 [n, {height}, {width}, 3], got {chunk.dtype} {chunk.shape}")
            for frame in chunk:
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts, video_frame.time_base = written, time_base
                written += 1
                for packet in stream.encode(video_frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
