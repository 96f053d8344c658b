"""Tests of heron.pipeline.decode and heron.pipeline.sources on small generated videos.

Every video is written into a temp dir with heron.data.video_writer.write_video. Frame i shows
its index in binary as six black/white vertical stripes, so a decoded, resized, lossy frame still
says which source frame it is.
"""

from __future__ import annotations

import functools
import http.server
import io
import logging
import re
import shutil
import socket
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from heron.config import DecodeConfig
from heron.data.video_writer import write_video
from heron.errors import (
    ConfigError,
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    ResolutionError,
    SourceNotFoundError,
    SourceUnreachableError,
    TimeRangeError,
    UnsupportedCodecError,
    UnsupportedSourceError,
)
from heron.pipeline.decode import (
    VideoDecoder,
    VideoInfo,
    iter_windows,
    map_open_error,
    probe,
)
from heron.pipeline.decode import decoder as decode
from heron.pipeline.sources import content_id, resolve_source

VIDEO_FPS = 10.0  # frame rate of the generated videos
N_FRAMES = 30  # 3 s
HEIGHT, WIDTH = 48, 64
CFG = DecodeConfig(fps=2.0, window_frames=4, size=32)
EXPECTED_PTS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]  # 2 samples/s over 3 s
CONTAINERS = {".mp4": "h264", ".webm": "vp9", ".mkv": "hevc", ".mov": "h264", ".avi": "mpeg4"}


INDEX_BITS = 6  # stripes per frame: up to 64 distinguishable frames


def make_frames(n: int = N_FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """uint8 [n, height, width, 3]: stripe k (of 6, from the left) is white iff index bit k is 1."""
    stripe = np.minimum(np.arange(width) * INDEX_BITS // width, INDEX_BITS - 1)  # [width]
    bits = (np.arange(n)[:, None] >> stripe[None, :]) & 1  # [n, width]
    rows = (255 * bits).astype(np.uint8)[:, None, :, None]  # [n, 1, width, 1]
    return np.broadcast_to(rows, (n, height, width, 3)).copy()


def noisy_frames(n: int, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """Incompressible frames, so each second of video takes about the same number of bytes."""
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def decode_all(source, cfg: DecodeConfig = CFG, **kwargs) -> tuple[VideoDecoder, np.ndarray, np.ndarray]:
    """(decoder, frames [N, H, W, 3], pts [N]) of a whole run."""
    decoder = VideoDecoder(source, cfg, **kwargs)
    windows = list(decoder)
    assert windows and all(len(w.pts) for w in windows)
    return (
        decoder,
        np.concatenate([w.frames for w in windows]),
        np.concatenate([w.pts for w in windows]),
    )


def frame_indices(frames: np.ndarray) -> np.ndarray:
    """Source frame index of each decoded frame [N, H, W, 3], read back from its stripes."""
    width = frames.shape[2]
    index = np.zeros(len(frames), dtype=int)
    for bit in range(INDEX_BITS):  # the middle half of each stripe, away from blurred edges
        lo, hi = int((bit + 0.25) * width / INDEX_BITS), int((bit + 0.75) * width / INDEX_BITS)
        index |= (frames[:, :, lo:hi].mean(axis=(1, 2, 3)) > 127).astype(int) << bit
    return index


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """One 3 s, 10 fps, 64x48 video per container."""
    folder = tmp_path_factory.mktemp("videos")
    frames = make_frames()
    return {suffix: write_video(folder / f"clip{suffix}", frames, fps=VIDEO_FPS) for suffix in CONTAINERS}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Python's static file server, which ignores Range headers (some real servers do too)."""

    def log_message(self, *args):  # keep test output clean
        pass


class RangeHandler(QuietHandler):
    """Answers "Range: bytes=a-b" with 206 and the slice, as web servers and object stores do."""

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        first, last = int(match[1]), min(int(match[2] or len(data) - 1), len(data) - 1)
        self.send_response(206)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        return io.BytesIO(data[first : last + 1])


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # FFmpeg hangs up mid-body after a seek
        pass


@pytest.fixture(params=[QuietHandler, RangeHandler], ids=["no-ranges", "ranges"])
def http_root(request, tmp_path):
    """(folder, base URL, honours ranges) of an HTTP server on 127.0.0.1 serving ``folder``."""
    handler = functools.partial(request.param, directory=tmp_path)
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}", request.param is RangeHandler
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- containers, sampling, windows ---------------------------------------------------------------


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize("suffix", list(CONTAINERS))
def test_containers_give_expected_samples(videos, suffix, decoder):
    cfg = DecodeConfig(fps=2.0, window_frames=4, size=32, decoder=decoder)
    run = VideoDecoder(videos[suffix], cfg)
    windows = list(run)
    assert run.info.codec.startswith(CONTAINERS[suffix]) or CONTAINERS[suffix] in run.info.codec
    assert (run.info.width, run.info.height) == (WIDTH, HEIGHT)
    assert run.info.duration == pytest.approx(3.0, abs=0.11)
    assert [w.index for w in windows] == [0, 1]
    assert [w.frames.shape for w in windows] == [(4, 32, 42, 3), (2, 32, 42, 3)]
    assert all(w.frames.dtype == np.uint8 and w.pts.dtype == np.float64 for w in windows)
    pts = np.concatenate([w.pts for w in windows])
    np.testing.assert_allclose(pts, EXPECTED_PTS, atol=1 / VIDEO_FPS)
    np.testing.assert_array_equal(frame_indices(np.concatenate([w.frames for w in windows])), [0, 5, 10, 15, 20, 25])
    assert run.stats.decoder == decoder and run.stats.frames_kept == 6 and run.stats.windows == 2
    assert run.stats.truncated_at is None


def test_variable_frame_rate_uses_presentation_times(tmp_path):
    # Irregular spacing plus a 1.3 s gap: the sampler must follow pts, not frame counts.
    gaps = np.r_[np.random.default_rng(1).uniform(0.03, 0.2, 20), 1.3, np.full(10, 0.05)]
    pts_in = np.r_[0.0, np.cumsum(gaps)]
    path = write_video(tmp_path / "vfr.mp4", make_frames(len(pts_in)), pts_seconds=pts_in)
    expected = []  # the documented rule, brute force: first pts >= t, each frame at most once
    for t in np.arange(0, pts_in[-1] + 1e-9, 0.5):
        first = pts_in[pts_in >= t - 1e-9]
        if len(first) and (not expected or first[0] > expected[-1]):
            expected.append(first[0])
    for decoder in ("decord", "pyav"):
        _, frames, pts = decode_all(path, DecodeConfig(fps=2.0, window_frames=4, size=32, decoder=decoder))
        np.testing.assert_allclose(pts, expected, atol=2e-3)
        np.testing.assert_array_equal(frame_indices(frames), np.searchsorted(pts_in, np.array(expected) - 1e-6))


def test_video_writer_round_trips_vfr_timestamps(tmp_path):
    pts_in = np.array([0.0, 0.013, 0.2, 0.21, 0.9, 1.337, 1.4])
    for suffix in (".mp4", ".mkv", ".webm"):
        path = write_video(tmp_path / f"vfr{suffix}", make_frames(len(pts_in)), pts_seconds=pts_in)
        with av.open(str(path)) as container:
            pts_out = [float(frame.time) for frame in container.decode(video=0)]
        np.testing.assert_allclose(pts_out, pts_in, atol=1e-3)


def test_resize_short_side_and_fixed_size(tmp_path):
    portrait = write_video(tmp_path / "portrait.mp4", make_frames(10, height=64, width=48), fps=VIDEO_FPS)
    for size, expected in [(32, (42, 32)), (100, (134, 100)), ((20, 30), (20, 30))]:
        run = VideoDecoder(portrait, DecodeConfig(size=size))
        assert next(iter(run)).frames.shape[1:] == (*expected, 3)
    for bad in (33, 0, (20, 31), (20,)):
        with pytest.raises(ConfigError):
            DecodeConfig(size=bad)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_start_and_end_seek_once_and_bound_the_samples(tmp_path, decoder):
    path = write_video(tmp_path / "long.mp4", make_frames(60), fps=VIDEO_FPS, gop=10)  # 6 s
    cfg = DecodeConfig(fps=2.0, window_frames=4, size=32, decoder=decoder)
    run, frames, pts = decode_all(path, cfg, start=3.2, end=5.0)
    np.testing.assert_allclose(pts, [3.2, 3.7, 4.2, 4.7], atol=1e-6)
    np.testing.assert_array_equal(frame_indices(frames), [32, 37, 42, 47])
    if decoder == "pyav":  # one seek to the keyframe at 3.0 s: the 30 frames before it are skipped
        assert run.stats.frames_decoded <= 25


def test_decord_and_pyav_agree(tmp_path):
    frames_in = make_frames(40, height=96, width=128)
    frames_in[..., 2] = np.random.default_rng(2).integers(0, 256, frames_in.shape[1:3], dtype=np.uint8)
    path = write_video(tmp_path / "texture.mp4", frames_in, fps=VIDEO_FPS)
    cfg = DecodeConfig(fps=3.0, window_frames=5, size=48)
    _, frames_decord, pts_decord = decode_all(path, DecodeConfig(**{**cfg.__dict__, "decoder": "decord"}))
    _, frames_pyav, pts_pyav = decode_all(path, DecodeConfig(**{**cfg.__dict__, "decoder": "pyav"}))
    np.testing.assert_allclose(pts_decord, pts_pyav, atol=1e-6)
    # The two scalers differ slightly (decord scales in a filter graph, PyAV in one swscale call).
    assert np.abs(frames_decord.astype(int) - frames_pyav.astype(int)).mean() < 4


def test_windows_stream_lazily_and_last_window_is_short(videos):
    windows = iter_windows(videos[".mp4"], DecodeConfig(fps=VIDEO_FPS, window_frames=7, size=32), source_id="clip")
    first = next(windows)
    assert first.source_id == "clip" and first.frames.shape[0] == 7
    rest = list(windows)
    assert [len(w.pts) for w in rest] == [7, 7, 7, 2]
    assert [w.index for w in rest] == [1, 2, 3, 4]


# --- decoder choice and fallback -----------------------------------------------------------------


@pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="no AV1 encoder in this PyAV")
def test_what_decord_reads_wrong_goes_to_pyav(tmp_path, caplog):
    # decord's bundled FFmpeg has no AV1 decoder, and shifts MPEG-TS frames by ~10: PyAV reads both.
    av1 = write_video(tmp_path / "av1.mkv", make_frames(), fps=VIDEO_FPS, codec="libsvtav1")
    ts = write_video(tmp_path / "clip.ts", make_frames(), fps=VIDEO_FPS)
    for path, why in ((av1, "video"), (ts, "decord does not read mpegts reliably")):
        with caplog.at_level(logging.INFO, logger="heron.pipeline.decode"):
            run, frames, pts = decode_all(path)
        assert run.stats.decoder == "pyav" and why in run.stats.fallback_reason
        assert "using PyAV" in caplog.text
        np.testing.assert_allclose(pts, EXPECTED_PTS, atol=1e-6)
    with pytest.raises(CorruptVideoError, match="decord could not decode"):  # forced: decord fails to open it
        list(VideoDecoder(av1, DecodeConfig(decoder="decord")))


def test_pyav_continues_when_decord_fails_part_way(videos, monkeypatch, caplog):
    import decord

    reference = decode_all(videos[".mp4"], DecodeConfig(fps=2.0, window_frames=2, size=32, decoder="pyav"))
    real_get_batch, calls = decord.VideoReader.get_batch, []

    def get_batch_failing_on_third_call(self, indices):
        calls.append(indices)
        if len(calls) == 3:
            raise decord.DECORDError("simulated decode failure")
        return real_get_batch(self, indices)

    monkeypatch.setattr(decord.VideoReader, "get_batch", get_batch_failing_on_third_call)
    with caplog.at_level(logging.WARNING, logger="heron.pipeline.decode"):
        run, frames, pts = decode_all(videos[".mp4"], DecodeConfig(fps=2.0, window_frames=2, size=32))
    assert run.stats.decoder == "decord+pyav" and "simulated" in run.stats.fallback_reason
    assert "PyAV continues" in caplog.text
    np.testing.assert_allclose(pts, reference[2], atol=1e-6)
    np.testing.assert_array_equal(frame_indices(frames), frame_indices(reference[1]))


def test_urls_decode_with_pyav(videos, http_root):
    folder, base, _ = http_root
    for suffix in (".mp4", ".webm"):
        shutil.copy(videos[suffix], folder / f"clip{suffix}")
        url = f"{base}/clip{suffix}"
        assert probe(url).width == WIDTH
        run, frames, pts = decode_all(url)
        assert run.stats.decoder == "pyav" and run.source_id == content_id(url)
        np.testing.assert_allclose(pts, EXPECTED_PTS, atol=1e-6)
        np.testing.assert_array_equal(frame_indices(frames), [0, 5, 10, 15, 20, 25])
    with pytest.raises(ConfigError):
        VideoDecoder(f"{base}/clip.mp4", DecodeConfig(decoder="decord"))


@pytest.fixture(scope="module")
def large_videos(tmp_path_factory) -> dict[str, Path]:
    """6 s, 25 fps, ~1 MB each: too big for FFmpeg to buffer a whole file from a URL."""
    folder = tmp_path_factory.mktemp("large")
    frames = noisy_frames(150)
    return {s: write_video(folder / f"noisy{s}", frames, fps=25.0, gop=25) for s in (".webm", ".mp4")}


def test_url_start_seeks_or_decodes_from_the_start(large_videos, http_root):
    folder, base, ranges = http_root
    for path in large_videos.values():
        shutil.copy(path, folder / path.name)
    cfg = DecodeConfig(fps=1.0, window_frames=4, size=32)
    # Matroska: with ranges the seek works; without, FFmpeg "seeks" without error but resumes
    # seconds late, the landing check notices and PyAV decodes again from the start.
    run, _, pts = decode_all(f"{base}/noisy.webm", cfg, start=3.0)
    np.testing.assert_allclose(pts, [3.0, 4.0, 5.0], atol=1e-6)
    assert (run.stats.frames_decoded < 100) == ranges  # one seek, or all 150 frames
    mp4 = f"{base}/noisy.mp4"
    if ranges:
        run, _, pts = decode_all(mp4, cfg, start=3.0)
        np.testing.assert_allclose(pts, [3.0, 4.0, 5.0], atol=1e-6)
        assert run.stats.frames_decoded < 100
    else:  # MP4 with its index at the end cannot be read without ranges
        with pytest.raises(SourceUnreachableError, match="range requests") as error:
            list(VideoDecoder(mp4, cfg))
        assert_one_line(error)


# --- bad input -----------------------------------------------------------------------------------


def assert_one_line(error: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(error.value) and str(error.value)


def test_missing_file_and_bad_scheme(tmp_path):
    with pytest.raises(SourceNotFoundError, match="not found") as error:
        VideoDecoder(tmp_path / "nope.mp4")
    assert_one_line(error)
    with pytest.raises(UnsupportedSourceError, match="ftp"):
        resolve_source("ftp://example.invalid/a.mp4")
    with pytest.raises(NotAVideoError, match="directory"):
        resolve_source(tmp_path)


def test_text_file_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(NotAVideoError, match="text file") as error:
        VideoDecoder(path)
    assert_one_line(error)
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(NotAVideoError, match="empty"):
        VideoDecoder(tmp_path / "zero.mp4")


def test_truncated_and_header_garbage_are_corrupt(videos, tmp_path):
    data = videos[".mp4"].read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.3)])  # the index (moov) is at the end
    with pytest.raises(CorruptVideoError, match="truncated or corrupt") as error:
        VideoDecoder(tmp_path / "cut.mp4")
    assert_one_line(error)
    garbage = bytes(np.random.default_rng(3).integers(0, 256, 64, dtype=np.uint8))
    (tmp_path / "garbage.mp4").write_bytes(garbage + data[64:])
    with pytest.raises(CorruptVideoError, match="MP4"):
        VideoDecoder(tmp_path / "garbage.mp4")


def test_zero_frames_and_empty_range(videos, tmp_path):
    path = tmp_path / "empty.avi"  # AVI keeps a video stream with no packets; MP4 drops it
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
    with pytest.raises(EmptyVideoError, match="no frames") as error:
        list(VideoDecoder(path))
    assert_one_line(error)
    for decoder in ("decord", "pyav"):
        with pytest.raises(EmptyVideoError, match="no frames between 10.0 s") as error:
            list(VideoDecoder(videos[".mp4"], DecodeConfig(decoder=decoder), start=10.0, end=12.0))
        assert_one_line(error)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "mono"
        for k in range(20):
            samples = np.sin(np.arange(1024) * 0.06 + k).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, k * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(NotAVideoError, match="no video stream") as error:
        probe(path)
    assert_one_line(error)


def test_unsupported_codec(videos, tmp_path):
    # Rename the Matroska codec id: FFmpeg sees a video track with a codec it has no decoder for.
    data = videos[".mkv"].read_bytes()
    assert data.count(b"V_MPEGH/ISO/HEVC") == 1
    (tmp_path / "odd.mkv").write_bytes(data.replace(b"V_MPEGH/ISO/HEVC", b"V_HERON/NOCODEC0"))
    with pytest.raises(UnsupportedCodecError, match="codec") as error:
        VideoDecoder(tmp_path / "odd.mkv")
    assert_one_line(error)
    # The mapping of PyAV's own "decoder not found" error (AVERROR_DECODER_NOT_FOUND).
    tag = 0xF8 | ord("D") << 8 | ord("E") << 16 | ord("C") << 24
    with pytest.raises(av.error.DecoderNotFoundError) as raised:
        av.error.err_check(-tag)
    assert isinstance(map_open_error(raised.value, resolve_source(videos[".mkv"])), UnsupportedCodecError)


def test_absurd_resolution(videos, monkeypatch):
    with pytest.raises(ResolutionError, match="64x48, beyond max_resolution 32") as error:
        VideoDecoder(videos[".mp4"], DecodeConfig(max_resolution=32))
    assert_one_line(error)
    zero = VideoInfo(duration=3.0, fps=10.0, width=0, height=0, codec="h264", n_frames=30)
    monkeypatch.setattr(decode, "probe", lambda *args, **kwargs: zero)
    with pytest.raises(ResolutionError, match="0x0"):
        VideoDecoder(videos[".mp4"])


def test_unreachable_and_missing_urls(http_root):
    with pytest.raises(SourceUnreachableError, match="Connection refused") as error:
        VideoDecoder(f"http://127.0.0.1:{closed_port()}/x.mp4", DecodeConfig(url_timeout_s=2))
    assert_one_line(error)
    with pytest.raises(SourceUnreachableError, match="404"):
        probe(f"{http_root[1]}/missing.mp4")


@pytest.mark.parametrize("start, end", [(5.0, 2.0), (-1.0, None), (None, -3.0), (2.0, 2.0), (float("nan"), None)])
def test_bad_time_range(videos, start, end):
    with pytest.raises(TimeRangeError) as error:
        VideoDecoder(videos[".mp4"], start=start, end=end)
    assert_one_line(error)


# --- partial corruption --------------------------------------------------------------------------


def test_corrupt_middle_is_skipped_and_decoding_resumes_after_it(tmp_path, caplog):
    path = write_video(tmp_path / "noisy.mp4", noisy_frames(150), fps=25.0, gop=25)  # 6 s
    data = bytearray(path.read_bytes())
    middle, span = len(data) // 2, len(data) // 10
    data[middle : middle + span] = np.random.default_rng(4).integers(0, 256, span, dtype=np.uint8).tobytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    full_pts = np.arange(0, 6, 0.5)
    for decoder in ("auto", "pyav"):
        caplog.clear()
        cfg = DecodeConfig(fps=2.0, window_frames=4, size=32, decoder=decoder)
        with caplog.at_level(logging.WARNING, logger="heron.pipeline.decode"):
            run, _, pts = decode_all(broken, cfg)
        assert run.stats.truncated_at is None and "pyav" in run.stats.decoder
        [(start, end, reason)] = run.stats.damaged  # one damaged span, in the middle
        assert 2.0 < start < end < 4.5 and reason
        assert "skipped undecodable data at" in caplog.text
        # Every sample before the damage came out, and every one from the next keyframe on.
        np.testing.assert_allclose(pts[pts < start], full_pts[full_pts < start], atol=0.05)
        assert [t for t in full_pts if t >= 4.0] == [t for t in np.round(pts, 1) if t >= 4.0]


def test_truncated_stream_keeps_what_decoded(tmp_path, caplog):
    path = write_video(tmp_path / "noisy.webm", noisy_frames(100, 48, 64), fps=20.0)  # 5 s
    data = path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])  # Matroska streams: the first half still plays
    for decoder in ("decord", "pyav"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="heron.pipeline.decode"):
            run, _, pts = decode_all(cut, DecodeConfig(fps=2.0, window_frames=4, size=32, decoder=decoder))
        assert run.stats.truncated_at is not None and 1.0 < run.stats.truncated_at < 4.0
        assert "of 5.0 s" in caplog.text and "corrupt or missing" in caplog.text
        assert pts[0] == 0.0 and pts[-1] <= run.stats.truncated_at


# --- content ids ---------------------------------------------------------------------------------


def test_content_id_follows_bytes_not_paths(videos, tmp_path):
    copy = shutil.copy(videos[".mp4"], tmp_path / "elsewhere.mp4")
    assert content_id(copy) == content_id(videos[".mp4"]) == content_id(str(videos[".mp4"]))
    assert content_id(videos[".mp4"]) != content_id(videos[".mov"])
    assert len(content_id(copy)) == 32
    # A large file is sampled, not read whole: edits in a sampled block still change the id.
    big = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(5).integers(0, 256, 6 << 20, dtype=np.uint8).tobytes())
    big.write_bytes(bytes(data))
    before = content_id(big)
    data[1 << 20] ^= 0xFF  # first byte of the first middle sample
    big.write_bytes(bytes(data))
    assert content_id(big) != before
    assert content_id("http://127.0.0.1:1/a.mp4") == content_id("http://127.0.0.1:1/a.mp4")
    assert content_id("http://127.0.0.1:1/a.mp4") != content_id("http://127.0.0.1:1/b.mp4")


def test_decode_config_is_validated():
    for kwargs in (
        {"fps": 0},
        {"fps": float("inf")},
        {"window_frames": 0},
        {"decoder": "ffmpeg"},
        {"max_resolution": 0},
        {"url_timeout_s": 0},
    ):
        with pytest.raises(ConfigError):
            DecodeConfig(**kwargs)
    assert DecodeConfig(size=[20, 30]).size == (20, 30)


# --- the reader interface -------------------------------------------------------------------------


def test_every_backend_behind_the_reader_interface_yields_the_same_frames(videos):
    """Readers know only their source, output size and the selector: same frames, same pts."""
    from heron.pipeline.decode import FrameSampler
    from heron.pipeline.decode.decord_reader import DecordReader
    from heron.pipeline.decode.pyav_reader import PyAVReader

    source = resolve_source(videos[".mp4"])
    readers = [
        DecordReader(source.path, height=32, width=42, batch=4),
        PyAVReader(source, height=32, width=42, fps=VIDEO_FPS, timeout_s=5),
    ]
    got = []
    for reader in readers:
        frames = list(reader.frames(FrameSampler(CFG.fps, None, None), None))
        got.append(frames)
        assert reader.progress.frames_decoded >= len(frames) and reader.progress.stream_end >= 2.8
    assert [pts for _, pts in got[0]] == [pts for _, pts in got[1]] == pytest.approx(EXPECTED_PTS)
    assert list(frame_indices(np.stack([f for f, _ in got[0]]))) == list(
        frame_indices(np.stack([f for f, _ in got[1]]))
    )


def test_a_reader_reports_truncation_as_a_typed_exception(tmp_path):
    from heron.pipeline.decode import FrameSampler, StreamTruncated
    from heron.pipeline.decode.pyav_reader import PyAVReader

    path = write_video(tmp_path / "noisy.webm", noisy_frames(40, 48, 64), fps=8)
    cut = tmp_path / "cut.webm"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    reader = PyAVReader(resolve_source(cut), height=48, width=64, fps=8, timeout_s=5)
    frames = []
    try:
        for frame in reader.frames(FrameSampler(8.0, None, None), None):
            frames.append(frame)
    except StreamTruncated as truncated:
        assert truncated.at is not None and 0 < truncated.at < 5
    else:  # some cuts end cleanly at a cluster boundary: then the decoder's length check flags it
        assert reader.progress.stream_end < 4.5
    assert frames and reader.progress.last_pts == frames[-1][1]
