"""A corpus of odd, damaged and impostor video files for fault tests of Heron's decoders.

``build_corpus(directory)`` writes every file into ``directory`` (flat; names start with the
kind) and returns one ``CorpusFile`` per file. Everything is made with PyAV's bundled encoders
(libx264, libx265, libvpx-vp9, libsvtav1, mjpeg, mpeg4, mpeg2video, aac, libopus, png): no system
ffmpeg binary is used (none is installed here). An encoder missing from another PyAV build only
drops the files that need it (logged as "skipped"), so the corpus degrades instead of failing.
112 files, about 10 MB, built in 1.5-3.5 s on two cores; 101 files are under 200 KB (the largest
are the two-file concatenations, up to ~360 KB).

Deterministic: frame content, damage positions and random bytes come from fixed seeds; encoders
run single-threaded, containers are written with ``fflags=+bitexact`` (no random Matroska UIDs)
and x264 runs with ``mbtree=0`` (its macroblock-tree lookahead reads uninitialised memory on small
frames, so its output depended on what ran before it). Twelve builds in one process gave
byte-identical files. Encoder output can still change with the PyAV/FFmpeg version, so tests
should assert behaviour, not hashes.

``expect_frames`` is decided from each file's byte layout, not by decoding it:

* valid files: True; impostors (including audio-only and cover-art-only files): False;
* damaged files: True when the container structure needed to find packets is intact AND at
  least one video keyframe packet is byte-for-byte intact. Structure is: MP4: the ftyp and moov
  boxes and the mdat box header, wherever they sit; Matroska/WebM: all bytes before the first
  video packet (EBML header, SeekHead, Info, Tracks); MPEG-TS: nothing (PAT/PMT repeat every
  0.1 s and demuxers resync on the 0x47 sync byte). Damage is tracked as byte ranges in the
  undamaged base file's coordinates, against that base's packet positions (``packet.pos``).

True means "a decoder must recover at least one frame". False means the file holds no frame a
decoder can be expected to find; recovering some anyway is allowed (FFmpeg reads 53 frames from
a moov-at-end MP4 cut 1% short, through its partial moov), but when none is recovered Heron must
raise a typed error (CorruptVideoError / NotAVideoError), never crash or hang.

Run ``python -m tests.faults.corpus OUT_DIR`` to build it and print the table.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

logger = logging.getLogger(__name__)

Kind = Literal["valid", "damaged", "impostor"]

# Placeholders written as metadata, then patched in the file to same-length invalid UTF-8.
_BAD_UTF8 = b"\xff\xfe bad"  # 0xff can never start a UTF-8 sequence
_TITLE_PLACEHOLDER = b"QZtitl"  # len == len(_BAD_UTF8)
_STREAM_PLACEHOLDER = b"QZstrm"

# The damage bases: 128x96 noisy video, 15 fps, 6 s, a keyframe every 15 frames (6 GOPs).
_BASE_W, _BASE_H, _BASE_FPS, _BASE_FRAMES, _BASE_GOP = 128, 96, 15, 90, 15


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus and what a decoder should make of it."""

    path: Path
    kind: Kind  # "valid", "damaged" or "impostor"
    description: str  # what the file is, in words
    expect_frames: bool  # True: frames must be recovered (see the module docstring)

    @property
    def name(self) -> str:
        return self.path.name


# --- frames and encoding ---------------------------------------------------------------------


def _frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, h, w, 3] RGB: a moving bar and gradient over seeded noise (so packets are big
    enough to damage meaningfully), frame index visible in the bar's position."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((n, height, width, 3), np.uint8)
    noise = rng.integers(0, 48, size=(height, width, 3), dtype=np.uint8)
    for i in range(n):
        frame = np.zeros((height, width, 3), np.int32)
        frame[..., 0] = (x * 255 // max(width - 1, 1) + 7 * i) % 256
        frame[..., 1] = (y * 255 // max(height - 1, 1) + 3 * i) % 256
        frame[..., 2] = 128 + seed * 40
        bar = (i * max(width // 16, 1)) % max(width, 1)
        frame[:, bar : bar + max(width // 16, 1), :] = 255
        frame += np.roll(noise, i, axis=1)
        out[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def _audio_frames(seconds: float, rate: int = 16000, samples: int = 1024) -> list[av.AudioFrame]:
    """Mono float planar sine frames covering ``seconds`` (pts in samples)."""
    frames, total = [], int(seconds * rate)
    for start in range(0, total, samples):
        t = (np.arange(samples) + start) / rate
        data = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        frames.append(frame)
    return frames


def _codec_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # UnknownCodecError and friends
        return False
    return True


class _Skip(Exception):
    """The file cannot be made with this PyAV build (missing encoder)."""


def _encode(
    path: Path,
    codec: str,
    frames: np.ndarray,
    *,
    fps: float = 15,
    pts_seconds: Sequence[float] | None = None,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    gop: int | None = None,
    bframes: int | None = None,
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    audio: str | None = None,
    title: bytes | None = None,
    stream_title: bytes | None = None,
    codec_tag: str | None = None,
) -> Path:
    """Encode RGB ``frames`` into ``path`` with one video stream (and optionally audio)."""
    if not _codec_available(codec) or (audio and not _codec_available(audio)):
        raise _Skip(f"encoder {codec if not _codec_available(codec) else audio} not in this PyAV")
    n, height, width = frames.shape[:3]
    if pts_seconds is not None:
        time_base = Fraction(1, 1000)
        ticks = [round(s * 1000) for s in pts_seconds]
    else:
        time_base = Fraction(1, round(fps)) if fps >= 1 else Fraction(round(1 / fps), 1)
        ticks = list(range(n))
    options = dict(options or {})
    if codec == "libx265":
        options.setdefault("x265-params", "log-level=error:pools=1:frame-threads=1")
    if codec == "libx264":
        # x264's macroblock-tree lookahead (with SIMD) reads uninitialised heap memory on small
        # frames: output then depends on what the previous encoder left there. Off = stable bytes.
        extra = options.get("x264-params")
        options["x264-params"] = "mbtree=0" + (f":{extra}" if extra else "")
    # bitexact: no random Matroska UIDs, so the same build writes the same bytes.
    container_options = {"fflags": "+bitexact", **(container_options or {})}
    with av.open(str(path), mode="w", format=container_format, container_options=container_options) as container:
        if title is not None:
            container.metadata["title"] = title.decode("ascii")
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.codec_context.thread_count = 1  # deterministic output
        if codec_tag:
            stream.codec_tag = codec_tag
        if gop is not None:
            stream.codec_context.gop_size = gop
        if bframes is not None:
            stream.codec_context.max_b_frames = bframes
        if stream_title is not None:
            stream.metadata["title"] = stream_title.decode("ascii")
        stream.codec_context.options = options
        audio_stream = None
        if audio:
            audio_stream = container.add_stream(audio, rate=16000)
            audio_stream.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = ticks[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            length = (ticks[-1] + 1) * float(time_base) if ticks else 1.0
            for frame in _audio_frames(length):
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    if title is not None or stream_title is not None:
        data = path.read_bytes()
        for placeholder, wanted in ((title, _TITLE_PLACEHOLDER), (stream_title, _STREAM_PLACEHOLDER)):
            if placeholder is not None:
                if data.count(wanted) != 1:
                    raise _Skip(f"metadata placeholder {wanted!r} not found once in {path.name}")
                data = data.replace(wanted, _BAD_UTF8)
        path.write_bytes(data)
    return path


# --- byte layout of damage bases -------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where a base file's video packets are, and which byte ranges are container structure."""

    size: int
    critical: tuple[tuple[int, int], ...]  # [start, end) ranges that must be intact
    keyframes: tuple[tuple[int, int], ...]  # [start, end) of each video keyframe packet


def _layout(path: Path, family: str) -> _Layout:
    """The base file's layout. Critical ranges: MP4: the ftyp and moov boxes and the mdat box
    header (wherever they sit); Matroska/WebM: everything before the first video packet (EBML
    header, SeekHead, Info, Tracks); MPEG-TS: none, as the muxer repeats PAT/PMT every 0.1 s and
    demuxers resync on the 0x47 sync byte."""
    size = path.stat().st_size
    packets: list[tuple[int, int, bool]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size and packet.pos is not None and packet.pos >= 0:
                packets.append((packet.pos, packet.size, bool(packet.is_keyframe)))
    packets.sort()
    if family == "mp4":
        critical = _mp4_structure(path.read_bytes())
    elif family == "mkv":
        critical = [(0, packets[0][0])]
    else:
        critical = []
    keyframes = []
    for i, (pos, n, key) in enumerate(packets):
        if not key:
            continue
        if family == "ts":  # a PES spans TS packets interleaved with others: up to the next one
            end = packets[i + 1][0] if i + 1 < len(packets) else size
            keyframes.append((pos, max(end, pos + n)))
        else:
            keyframes.append((pos, pos + n))
    return _Layout(size, tuple(critical), tuple(keyframes))


def _mp4_structure(data: bytes) -> list[tuple[int, int]]:
    """[start, end) of the top-level ftyp and moov boxes and of the mdat box header."""
    ranges, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        if kind == b"mdat":
            ranges.append((pos, pos + header))
        elif kind in (b"ftyp", b"moov"):
            ranges.append((pos, pos + size))
        pos += size
    return ranges


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _survives(layout: _Layout, damaged: Sequence[tuple[int, int]]) -> bool:
    """True when no critical range is damaged and some keyframe packet is intact."""
    if any(_overlaps(c, d) for c in layout.critical for d in damaged if c[0] < c[1]):
        return False
    return any(not any(_overlaps(k, d) for d in damaged) for k in layout.keyframes)


# --- the corpus --------------------------------------------------------------------------------


class _Builder:
    def __init__(self, directory: Path):
        self.directory = directory
        self.files: list[CorpusFile] = []
        self.skipped: list[str] = []

    def add(self, name: str, kind: Kind, description: str, expect: bool) -> Path:
        path = self.directory / name
        self.files.append(CorpusFile(path, kind, description, expect))
        return path

    def encoded(
        self, name: str, description: str, make: Callable[[Path], Path], *, kind: Kind = "valid", expect: bool = True
    ) -> Path | None:
        path = self.directory / name
        try:
            make(path)
        except _Skip as reason:
            self.skipped.append(f"{name}: {reason}")
            logger.info("corpus: skipping %s (%s)", name, reason)
            path.unlink(missing_ok=True)
            return None
        self.files.append(CorpusFile(path, kind, description, expect))
        return path

    def raw(self, name: str, kind: Kind, description: str, data: bytes, expect: bool) -> None:
        self.add(name, kind, description, expect).write_bytes(data)


def build_corpus(directory: Path) -> list[CorpusFile]:
    """Write the fault corpus into ``directory`` (created if missing) and describe each file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    svt_log = os.environ.get("SVT_LOG")
    os.environ["SVT_LOG"] = "1"  # SVT-AV1 prints its banner to stderr unless told errors only
    try:
        b = _Builder(directory)
        bases = _valid_files(b)
        _damaged_files(b, bases)
        _impostor_files(b)
    finally:
        if svt_log is None:
            os.environ.pop("SVT_LOG", None)
        else:
            os.environ["SVT_LOG"] = svt_log
    logger.info(
        "corpus: %d files in %.1f s (%d skipped: %s)",
        len(b.files),
        time.perf_counter() - started,
        len(b.skipped),
        "; ".join(b.skipped) or "-",
    )
    return b.files


def _valid_files(b: _Builder) -> dict[str, tuple[Path, str]]:
    """Odd but valid files; returns the damage bases: key -> (path, layout family)."""
    small = _frames(30, 64, 48)
    x264 = "libx264"
    fast264 = {"preset": "veryfast"}

    # Damage bases (also valid files in their own right).
    frames = _frames(_BASE_FRAMES, _BASE_W, _BASE_H, seed=0)
    other = _frames(_BASE_FRAMES, _BASE_W, _BASE_H, seed=1)
    common = dict(fps=_BASE_FPS, gop=_BASE_GOP, options=fast264)
    base_specs = {
        # key: (name, description, layout family, frames, kwargs)
        "mp4_faststart": (
            "valid_base_h264_aac_faststart.mp4",
            "H.264 + AAC MP4, moov before mdat (faststart), 6 s 15 fps GOP 15",
            "mp4",
            frames,
            dict(codec=x264, audio="aac", container_options={"movflags": "+faststart"}),
        ),
        "mp4_moov_end": (
            "valid_base_h264_aac_moov_end.mp4",
            "H.264 + AAC MP4, moov after mdat (FFmpeg default), 6 s 15 fps GOP 15",
            "mp4",
            frames,
            dict(codec=x264, audio="aac"),
        ),
        "mkv": (
            "valid_base_h264_opus.mkv",
            "H.264 + Opus Matroska, 6 s 15 fps GOP 15",
            "mkv",
            frames,
            dict(codec=x264, audio="libopus"),
        ),
        "ts": (
            "valid_base_h264_aac.ts",
            "H.264 + AAC MPEG-TS (video starts at pts 0.133 s, audio at 0.069 s), 6 s 15 fps GOP 15",
            "ts",
            frames,
            dict(codec=x264, audio="aac"),
        ),
        "webm": (
            "valid_base_vp9.webm",
            "VP9 WebM, 6 s 15 fps GOP 15",
            "mkv",
            frames,
            dict(codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8"}),
        ),
        "mp4_faststart_b": (
            "valid_base_h264_faststart_other.mp4",
            "H.264 MP4 faststart, other content (splice partner)",
            "mp4",
            other,
            dict(codec=x264, container_options={"movflags": "+faststart"}),
        ),
        "mp4_moov_end_b": (
            "valid_base_h264_moov_end_other.mp4",
            "H.264 MP4 moov at end, other content (splice partner)",
            "mp4",
            other,
            dict(codec=x264),
        ),
        "mkv_b": (
            "valid_base_h264_other.mkv",
            "H.264 Matroska, other content (splice partner)",
            "mkv",
            other,
            dict(codec=x264),
        ),
        "ts_b": (
            "valid_base_h264_other.ts",
            "H.264 MPEG-TS, other content (splice partner)",
            "ts",
            other,
            dict(codec=x264),
        ),
    }
    bases: dict[str, tuple[Path, str]] = {}
    for key, (name, description, family, content, kwargs) in base_specs.items():
        kw = {**common, **kwargs}
        codec = kw.pop("codec")
        if kw.get("audio") and not _codec_available(kw["audio"]):  # keep the base, lose its audio
            description += f" [no audio: encoder {kw.pop('audio')} missing]"
        path = b.encoded(name, description, functools.partial(_encode, codec=codec, frames=content, **kw))
        if path is not None:
            bases[key] = (path, family)

    odd = [
        (
            "valid_2x2.mp4",
            "H.264 at 2x2 pixels, 30 frames",
            lambda p: _encode(p, x264, _frames(30, 2, 2), options=fast264),
        ),
        (
            "valid_2x2_yuv444p.mkv",
            "H.264 High 4:4:4 at 2x2 pixels",
            lambda p: _encode(p, x264, _frames(30, 2, 2), pix_fmt="yuv444p", options=fast264),
        ),
        (
            "valid_odd_15x9_yuv444p.mp4",
            "H.264 4:4:4 with odd width and height (15x9)",
            lambda p: _encode(p, x264, _frames(30, 15, 9), pix_fmt="yuv444p", options=fast264),
        ),
        (
            "valid_wide_1000x10.mp4",
            "H.264 at 1000x10 (aspect 100:1)",
            lambda p: _encode(p, x264, _frames(20, 1000, 10), options=fast264),
        ),
        (
            "valid_tall_16x600.mp4",
            "H.264 at 16x600 (aspect 1:37.5)",
            lambda p: _encode(p, x264, _frames(20, 16, 600), options=fast264),
        ),
        (
            "valid_yuv444p.mp4",
            "H.264 High 4:4:4 Predictive, yuv444p, 64x48",
            lambda p: _encode(p, x264, small, pix_fmt="yuv444p", options=fast264),
        ),
        (
            "valid_h264_10bit.mp4",
            "H.264 High 10, yuv420p10le, 64x48",
            lambda p: _encode(p, x264, small, pix_fmt="yuv420p10le", options=fast264),
        ),
        (
            "valid_hevc_10bit.mkv",
            "HEVC Main 10, yuv420p10le, 64x48",
            lambda p: _encode(p, "libx265", small, pix_fmt="yuv420p10le"),
        ),
        (
            "valid_hevc.mp4",
            "HEVC Main in MP4 (hvc1 tag), 64x48",
            lambda p: _encode(p, "libx265", small, codec_tag="hvc1"),
        ),
        (
            "valid_vp9.webm",
            "VP9 profile 0 in WebM, 64x48",
            lambda p: _encode(p, "libvpx-vp9", small, options={"deadline": "realtime", "cpu-used": "8"}),
        ),
        (
            "valid_av1.mkv",
            "AV1 (SVT-AV1 encoder; decoded by libdav1d) in Matroska, 64x48",
            lambda p: _encode(p, "libsvtav1", small, options={"preset": "12"}),
        ),
        (
            "valid_av1.mp4",
            "AV1 (SVT-AV1) in MP4, 64x48",
            lambda p: _encode(p, "libsvtav1", small, options={"preset": "12"}),
        ),
        (
            "valid_mjpeg.avi",
            "Motion JPEG in AVI, yuvj420p, 64x48",
            lambda p: _encode(p, "mjpeg", small, pix_fmt="yuvj420p"),
        ),
        (
            "valid_mpeg4_part2.avi",
            "MPEG-4 Part 2 (FFmpeg mpeg4, DivX-like) in AVI, 64x48",
            lambda p: _encode(p, "mpeg4", small),
        ),
        (
            "valid_mpeg2.mpg",
            "MPEG-2 video in MPEG-PS, 64x48",
            lambda p: _encode(p, "mpeg2video", small, container_format="vob"),
        ),
        (
            "valid_1fps.mp4",
            "H.264 at 1 fps, 8 frames (8 s)",
            lambda p: _encode(p, x264, _frames(8, 64, 48), fps=1, options=fast264),
        ),
        (
            "valid_240fps.mp4",
            "H.264 at 240 fps, 240 frames (1 s)",
            lambda p: _encode(p, x264, _frames(240, 32, 24), fps=240, options=fast264),
        ),
        (
            "valid_vfr_bursty.mp4",
            "H.264 VFR: bursts of frames 10 ms apart separated by 1-2.5 s gaps (time base 1/1000)",
            lambda p: _encode(p, x264, _frames(20, 64, 48), pts_seconds=_bursty_pts(), options=fast264),
        ),
        (
            "valid_vfr_bursty.mkv",
            "same bursty VFR timing in Matroska",
            lambda p: _encode(p, x264, _frames(20, 64, 48), pts_seconds=_bursty_pts(), options=fast264),
        ),
        (
            "valid_long_gop.mp4",
            "H.264 with a single keyframe: keyint = whole clip (90 frames), no scenecut",
            lambda p: _encode(
                p,
                x264,
                _frames(90, 64, 48),
                gop=90,
                options={**fast264, "x264-params": "keyint=90:min-keyint=90:scenecut=0"},
            ),
        ),
        (
            "valid_all_intra.mp4",
            "H.264 all-intra (every frame a keyframe)",
            lambda p: _encode(p, x264, small, gop=1, options={**fast264, "x264-params": "keyint=1"}),
        ),
        (
            "valid_no_bframes.mp4",
            "H.264 baseline-like: no B-frames, pts == dts",
            lambda p: _encode(p, x264, small, bframes=0, options={**fast264, "x264-params": "bframes=0"}),
        ),
        (
            "valid_one_frame.mp4",
            "H.264 with exactly one frame",
            lambda p: _encode(p, x264, _frames(1, 64, 48), options=fast264),
        ),
        (
            "valid_one_frame.mkv",
            "H.264 Matroska with exactly one frame",
            lambda p: _encode(p, x264, _frames(1, 64, 48), options=fast264),
        ),
        (
            "valid_bad_utf8_title.mp4",
            "valid H.264 MP4 whose container title tag is the invalid UTF-8 bytes ff fe ' bad'",
            lambda p: _encode(p, x264, small, options=fast264, title=_TITLE_PLACEHOLDER),
        ),
        (
            "valid_bad_utf8_title.mkv",
            "valid H.264 Matroska whose container title tag is invalid UTF-8 (ff fe ' bad')",
            lambda p: _encode(p, x264, small, options=fast264, title=_TITLE_PLACEHOLDER),
        ),
        (
            "valid_bad_utf8_stream_title.mkv",
            "valid H.264 Matroska whose video track name tag (stream metadata) is invalid UTF-8",
            lambda p: _encode(p, x264, small, options=fast264, stream_title=_STREAM_PLACEHOLDER),
        ),
    ]
    for name, description, make in odd:
        b.encoded(name, description, make)
    return bases


def _bursty_pts() -> list[float]:
    """20 pts (s): bursts of 5 frames 10 ms apart, gaps of 1.0 / 2.5 / 1.5 s between bursts."""
    starts, pts = [0.0, 1.04, 3.58, 5.12], []
    for start in starts:
        pts.extend(start + 0.01 * k for k in range(5))
    return pts


def _damaged_files(b: _Builder, bases: dict[str, tuple[Path, str]]) -> None:
    layouts = {key: (path, path.read_bytes(), _layout(path, fam)) for key, (path, fam) in bases.items()}
    rng = np.random.default_rng(1234)

    def damaged(name: str, description: str, data: bytes, expect: bool) -> None:
        b.raw(name, "damaged", description, data, expect)

    # Truncations.
    cuts = {
        "mp4_faststart": (5, 20, 50, 80, 95, 99),
        "mp4_moov_end": (5, 20, 50, 80, 95, 99),
        "mkv": (5, 20, 50, 80, 95, 99),
        "ts": (5, 20, 50, 95),
        "webm": (5, 50, 95),
    }
    for key, percents in cuts.items():
        if key not in layouts:
            continue
        path, data, layout = layouts[key]
        for pct in percents:
            at = len(data) * pct // 100
            damaged(
                f"damaged_trunc_{key}_{pct:02d}pct{path.suffix}",
                f"{path.name} truncated to its first {pct}% ({at} of {len(data)} bytes)",
                data[:at],
                _survives(layout, [(at, len(data))]),
            )
    # Cut points tied to the layout: inside the header, and inside the first keyframe packet.
    for key in ("mp4_faststart", "mkv"):
        if key in layouts:
            path, data, layout = layouts[key]
            header_end = layout.keyframes[0][0]  # the first video packet
            damaged(
                f"damaged_trunc_{key}_header_only{path.suffix}",
                f"{path.name} cut just before its first video packet: header, no media",
                data[:header_end],
                False,
            )
            k0, k1 = layout.keyframes[0]
            mid = (k0 + k1) // 2
            damaged(
                f"damaged_trunc_{key}_mid_first_keyframe{path.suffix}",
                f"{path.name} cut half-way through its first keyframe packet (byte {mid})",
                data[:mid],
                _survives(layout, [(mid, len(data))]),
            )
    if "mp4_faststart" in layouts:
        path, data, _ = layouts["mp4_faststart"]
        damaged("damaged_trunc_mp4_ftyp_only.mp4", f"first 32 bytes of {path.name} (ftyp box only)", data[:32], False)

    # Bit flips / random byte corruption in the middle third (seeded).
    for key in ("mp4_faststart", "mp4_moov_end", "mkv", "ts", "webm"):
        if key not in layouts:
            continue
        path, data, layout = layouts[key]
        lo, hi = len(data) // 3, 2 * len(data) // 3
        for label, count in (("light", 8), ("heavy", (hi - lo) // 50)):
            buf = bytearray(data)
            where = np.sort(rng.choice(np.arange(lo, hi), size=count, replace=False))
            for pos in where:
                buf[pos] ^= 1 << int(rng.integers(0, 8))
            damaged(
                f"damaged_bitflip_{label}_{key}{path.suffix}",
                f"{path.name} with {count} single-bit flips at seeded random bytes in [{lo}, {hi}) (the middle third)",
                bytes(buf),
                _survives(layout, [(int(p), int(p) + 1) for p in where]),
            )
        # A burst of random bytes over one whole keyframe in the middle (a bad disk sector).
        k0, k1 = layout.keyframes[len(layout.keyframes) // 2]
        buf = bytearray(data)
        buf[k0:k1] = rng.integers(0, 256, size=k1 - k0, dtype=np.uint8).tobytes()
        damaged(
            f"damaged_garbage_keyframe_{key}{path.suffix}",
            f"{path.name} with its middle keyframe packet (bytes {k0}-{k1}) overwritten by random bytes",
            bytes(buf),
            _survives(layout, [(k0, k1)]),
        )
    # Header damage.
    for key in ("mp4_faststart", "mp4_moov_end", "mkv"):
        if key not in layouts:
            continue
        path, data, layout = layouts[key]
        buf = bytearray(data)
        if key.startswith("mp4"):  # inside the moov box, past its 8-byte header
            start, end = max(layout.critical, key=lambda r: r[1] - r[0])
        else:
            start, end = layout.critical[0]
        where = np.sort(rng.choice(np.arange(start + 8, end), size=min(16, end - start - 8), replace=False))
        for pos in where:
            buf[pos] ^= 0xFF
        damaged(
            f"damaged_header_flips_{key}{path.suffix}",
            f"{path.name} with {len(where)} bytes inverted inside its header/index "
            f"(bytes {start}-{end}: {'the moov box' if key.startswith('mp4') else 'leading header'})",
            bytes(buf),
            False,
        )

    # Zeroed ranges.
    for key in ("mp4_faststart", "mp4_moov_end", "mkv", "ts", "webm"):
        if key not in layouts:
            continue
        path, data, layout = layouts[key]
        lo, hi = 4 * len(data) // 10, 6 * len(data) // 10
        damaged(
            f"damaged_zeroed_middle_{key}{path.suffix}",
            f"{path.name} with bytes {lo}-{hi} (40%-60%) set to zero",
            data[:lo] + bytes(hi - lo) + data[hi:],
            _survives(layout, [(lo, hi)]),
        )
    for key in ("mp4_moov_end", "mkv", "ts"):
        if key in layouts:
            path, data, layout = layouts[key]
            damaged(
                f"damaged_zeroed_head_{key}{path.suffix}",
                f"{path.name} with its first 4096 bytes set to zero",
                bytes(4096) + data[4096:],
                _survives(layout, [(0, 4096)]),
            )
    if "ts" in layouts:
        path, data, layout = layouts["ts"]
        junk = rng.integers(0, 256, size=3001, dtype=np.uint8).tobytes()
        damaged(
            "damaged_garbage_prefix_ts.ts",
            f"3001 random bytes, then all of {path.name} (TS must resync on 0x47 sync bytes)",
            junk + data,
            _survives(layout, []),
        )

    # Splices.
    for a, c in (
        ("mp4_faststart", "mp4_faststart_b"),
        ("mp4_moov_end", "mp4_moov_end_b"),
        ("mkv", "mkv_b"),
        ("ts", "ts_b"),
    ):
        if a not in layouts or c not in layouts:
            continue
        pa, da, la = layouts[a]
        pc, dc, lc = layouts[c]
        damaged(
            f"damaged_concat_{a}{pa.suffix}",
            f"{pa.name} followed byte-wise by all of {pc.name} (two files concatenated)",
            da + dc,
            _survives(la, []),
        )
        half = min(len(da), len(dc)) // 2
        expect = _survives(la, [(half, len(da))]) or _survives(lc, [(0, half)])
        damaged(
            f"damaged_splice_halves_{a}{pa.suffix}",
            f"first {half} bytes of {pa.name} + bytes from {half} on of {pc.name} (each half at its original offset)",
            da[:half] + dc[half:],
            expect,
        )


def _impostor_files(b: _Builder) -> None:
    rng = np.random.default_rng(99)
    b.raw(
        "impostor_text.mp4",
        "impostor",
        "plain UTF-8 text named .mp4",
        b"This is not a video.\nJust some notes someone saved as .mp4.\n" * 20,
        False,
    )
    b.raw(
        "impostor_html.mp4",
        "impostor",
        "an HTML error page named .mp4 (what a web server sends for a missing video)",
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
        b"<body><h1>Not Found</h1><p>The requested URL was not found.</p></body></html>\n",
        False,
    )
    b.raw("impostor_empty.mp4", "impostor", "an empty file (0 bytes) named .mp4", b"", False)
    b.raw(
        "impostor_random.mp4",
        "impostor",
        "64 KiB of seeded random bytes named .mp4",
        rng.integers(0, 256, size=65536, dtype=np.uint8).tobytes(),
        False,
    )
    b.raw(
        "impostor_random_small.mkv",
        "impostor",
        "100 seeded random bytes named .mkv",
        rng.integers(0, 256, size=100, dtype=np.uint8).tobytes(),
        False,
    )
    b.raw("impostor_zip.mp4", "impostor", "a ZIP archive (holding a text file) named .mp4", _zip_bytes(), False)
    b.raw(
        "impostor_pdf.mp4",
        "impostor",
        "a minimal PDF document named .mp4",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        False,
    )
    for name, codec, pix, what in (
        ("impostor_png.mp4", "png", "rgb24", "PNG"),
        ("impostor_jpeg.mp4", "mjpeg", "yuvj420p", "JPEG"),
    ):
        if _codec_available(codec):
            b.raw(
                name,
                "impostor",
                f"a single {what} image (64x48) named .mp4: FFmpeg opens it as a one-frame "
                "image stream; Heron should refuse it as not a video",
                _image_bytes(codec, pix),
                False,
            )
    for name, description, make in (
        ("impostor_audio_only.mp4", "AAC audio-only MP4 (an .m4a named .mp4): no video stream", _audio_only),
        (
            "impostor_audio_cover_art.mp4",
            "AAC audio MP4 whose only video stream is cover art (attached_pic disposition, one JPEG)",
            _audio_with_cover_art,
        ),
    ):
        b.encoded(name, description, make, kind="impostor", expect=False)


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("video.txt", date_time=(2024, 1, 1, 0, 0, 0))
        archive.writestr(info, "not a video\n" * 50)
    return buffer.getvalue()


def _image_bytes(codec: str, pix_fmt: str) -> bytes:
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = 64, 48, pix_fmt
    context.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(_frames(1, 64, 48)[0], format="rgb24").reformat(format=pix_fmt)
    frame.pts = 0
    return b"".join(bytes(p) for p in [*context.encode(frame), *context.encode()])


def _audio_only(path: Path) -> Path:
    if not _codec_available("aac"):
        raise _Skip("encoder aac not in this PyAV")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for frame in _audio_frames(2.0):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _audio_with_cover_art(path: Path) -> Path:
    if not (_codec_available("aac") and _codec_available("mjpeg")):
        raise _Skip("encoder aac or mjpeg not in this PyAV")
    with av.open(str(path), "w", format="mp4") as container:
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        cover = container.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 64, 48, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        frame = av.VideoFrame.from_ndarray(_frames(1, 64, 48)[0], format="rgb24").reformat(format="yuvj420p")
        frame.pts = 0
        for packet in [*cover.encode(frame), *cover.encode()]:
            container.mux(packet)
        for frame in _audio_frames(2.0):
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def main(argv: Sequence[str] = sys.argv[1:]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.faults.corpus OUT_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = build_corpus(Path(argv[0]))
    for f in files:
        size = f.path.stat().st_size
        print(f"{f.kind:8} {'frames' if f.expect_frames else '-':6} {size:8d}  {f.name}: {f.description}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
