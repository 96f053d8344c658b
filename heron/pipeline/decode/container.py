"""Opening a source with FFmpeg (PyAV) and reading its header, with Heron's typed errors.

``probe`` reads what the container says about its first video stream without decoding;
``open_container`` is the one ``av.open`` every PyAV path uses (timeouts for URLs, metadata
that is not valid UTF-8 tolerated); ``map_open_error`` turns FFmpeg's errors into Heron's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av

from heron.errors import (
    CorruptVideoError,
    NotAVideoError,
    ResolutionError,
    SourceError,
    SourceNotFoundError,
    SourceUnreachableError,
    UnsupportedCodecError,
)
from heron.pipeline.sources import Source, resolve_source, sniff_container


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (nothing is decoded)."""

    duration: float | None  # seconds; None when the container does not say
    fps: float | None  # average frame rate; None when unknown
    width: int  # pixels
    height: int  # pixels
    codec: str  # FFmpeg decoder name, e.g. "h264"
    n_frames: int | None  # frame count from the container index; None when unknown
    format: str = ""  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "mpegts"


def open_container(
    source: Source, timeout_s: float, options: dict[str, str] | None = None
) -> av.container.InputContainer:
    """av.open with Heron's typed errors instead of FFmpeg's.

    ``timeout_s`` bounds each network wait (open and read) of a URL. Metadata tags that are not
    valid UTF-8 are decoded with replacement characters instead of failing the open.
    """
    try:
        return av.open(
            source.uri,
            mode="r",
            timeout=timeout_s if source.is_url else None,
            metadata_errors="replace",
            options=options or {},
        )
    except av.error.FFmpegError as exc:
        raise map_open_error(exc, source) from exc


def probe(source: str | Source, *, url_timeout_s: float = 10.0) -> VideoInfo:
    """Read the container header of ``source`` (file path or URL) without decoding.

    Raises the typed errors of heron.errors: SourceNotFoundError, SourceUnreachableError,
    NotAVideoError (also: no video stream), UnsupportedCodecError, CorruptVideoError.
    """
    resolved = resolve_source(source)
    with open_container(resolved, url_timeout_s) as container:
        return video_info(resolved, container)


def map_open_error(exc: Exception, source: Source) -> SourceError:
    """The typed error for an exception PyAV raised while opening ``source``."""
    detail = first_line(exc)
    if isinstance(exc, (av.error.DecoderNotFoundError, av.error.PatchWelcomeError)):
        return UnsupportedCodecError(f"{source}: FFmpeg cannot decode this stream ({detail}); re-encode it to H.264")
    if isinstance(exc, av.error.FileNotFoundError) and not source.is_url:
        return SourceNotFoundError(f"video file not found: {source}")
    if source.is_url:
        if isinstance(exc, (av.error.InvalidDataError, av.error.EOFError)):
            return NotAVideoError(f"{source} did not return a video FFmpeg can read ({detail})")
        return SourceUnreachableError(f"cannot open {source}: {detail}; check the URL and that the server is up")
    if isinstance(exc, av.error.PermissionError):
        return SourceUnreachableError(f"cannot read {source}: permission denied")
    kind = sniff_container(source.path)
    if kind == "empty":
        return NotAVideoError(f"{source} is empty (0 bytes), not a video")
    if kind == "text":
        return NotAVideoError(f"{source} is a text file, not a video")
    if kind == "unknown":
        return NotAVideoError(f"{source} is not a video: FFmpeg does not recognise its format ({detail})")
    return CorruptVideoError(f"{source} looks like {kind} but cannot be read: it is truncated or corrupt ({detail})")


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream that is not cover art; NotAVideoError when there is none
    (CorruptVideoError when the container has no streams at all: its header is damaged)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    if not len(container.streams):
        raise CorruptVideoError(
            f"{container.name} is a {container.format.long_name or container.format.name} file with no readable "
            "stream: its header is damaged"
        )
    kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
    raise NotAVideoError(f"{container.name} has no video stream (streams: {kinds})")


def video_info(source: Source, container: av.container.InputContainer) -> VideoInfo:
    check_not_a_still_image(source, container)
    stream = video_stream(container)
    context = stream.codec_context
    if context is None:  # FFmpeg knows the stream is video but has no decoder for its codec
        raise UnsupportedCodecError(f"{source}: the video codec is unknown to this FFmpeg build; re-encode it to H.264")
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
        format=container.format.name,
    )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif")


def check_not_a_still_image(source: Source, container: av.container.InputContainer) -> None:
    """A still image (FFmpeg's png_pipe, jpeg_pipe, image2, ...) is accepted only under an image's
    name (a one-window "video"): named .mp4 it is a mistake, said as NotAVideoError."""
    name = container.format.name
    if not (name.endswith("_pipe") or name == "image2"):
        return
    suffix = Path(source.uri.split("?", 1)[0]).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        kind = name.removesuffix("_pipe").upper() if name != "image2" else "still"
        raise NotAVideoError(
            f"{source} is a {kind} image, not a video; to ask about an image, give it an image's name "
            f"({', '.join(IMAGE_SUFFIXES[:3])}, ...) or send it as image_url"
        )


def check_resolution(source: Source, info: VideoInfo, limit: int) -> None:
    if info.width <= 0 or info.height <= 0:
        raise ResolutionError(f"{source} reports a resolution of {info.width}x{info.height}; the file is broken")
    if max(info.width, info.height) > limit:
        raise ResolutionError(
            f"{source} is {info.width}x{info.height}, beyond max_resolution {limit}; "
            "downscale it first or raise max_resolution"
        )


def first_line(exc: Exception) -> str:
    """A one-line message for ``exc``, without decord's "[12:00:00] /src/file.cc:42: " prefixes
    or FFmpeg's "[Errno 875574520] " codes."""
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", str(exc))
    text = re.sub(r"\[Errno -?\d+\] ", "", text).strip()  # FFmpeg's AVERROR codes mean nothing to a person
    return text.splitlines()[0] if text else type(exc).__name__
