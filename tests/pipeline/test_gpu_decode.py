"""The GPU decode backend (torchcodec_reader.py): routing, fallback, and its reader logic on CPU.

Routing and fallback run everywhere (the GPU's availability is monkeypatched). The reader itself
runs on CPU where torchcodec and FFmpeg's shared libraries load (device="cpu": the same sampling,
indexing and resize code as on the GPU); elsewhere those tests skip. tests/gpu/ checks NVDEC.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from heron.config import DecodeConfig
from heron.data.video_writer import write_video
from heron.errors import ConfigError, CorruptVideoError, UnsupportedCodecError
from heron.pipeline.decode import FrameSampler, VideoDecoder
from heron.pipeline.decode import decoder as decode
from heron.pipeline.decode import torchcodec_reader as gpu
from heron.pipeline.decode.pyav_reader import PyAVReader
from heron.pipeline.decode.reader import ReaderFailed, ReadProgress
from heron.pipeline.sources import resolve_source
from tests.pipeline.test_decode import VIDEO_FPS, frame_indices, make_frames

CFG = DecodeConfig(fps=2.0, window_frames=4, size=32)


@functools.cache
def torchcodec_loads() -> bool:
    try:
        import torchcodec

        torchcodec._core.get_ffmpeg_library_versions()
    except Exception:
        return False
    return True


needs_torchcodec = pytest.mark.skipif(not torchcodec_loads(), reason="torchcodec (with FFmpeg 4-9 libs) not loadable")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("gpu") / "clip.mp4", make_frames(), fps=VIDEO_FPS)


class FakeGpuReader:
    """Stands in for TorchcodecReader: PyAV's frames under the GPU reader's name, failing on demand."""

    name = "nvdec"

    def __init__(self, source, *, height, width, batch, keyframes_only=False, fail_after: int | None = None):
        self.inner = PyAVReader(source, height=height, width=width, fps=VIDEO_FPS, timeout_s=5)
        self.progress, self.fail_after = ReadProgress(), fail_after  # as far as frames were handed out

    def frames(self, selector, seek_to=None):
        for n, (frame, pts) in enumerate(self.inner.frames(selector, seek_to)):
            if self.fail_after is not None and n == self.fail_after:
                raise ReaderFailed("simulated NVDEC failure")
            self.progress.saw_frame(pts)
            yield frame, pts


@pytest.fixture
def fake_gpu(monkeypatch):
    """A machine where the GPU decoder is available (and, by default, reads without failing)."""
    monkeypatch.setattr(decode, "gpu_decode_unavailable", lambda: None)
    monkeypatch.setattr(decode, "TorchcodecReader", FakeGpuReader)
    return monkeypatch


def test_auto_uses_the_gpu_when_available(clip, fake_gpu):
    run = VideoDecoder(clip, CFG)
    pts = np.concatenate([w.pts for w in run])
    assert run.stats.decoder == "nvdec" and run.stats.fallback_reason is None
    assert pts.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_without_a_gpu_auto_is_unchanged_and_reports_nothing(clip, monkeypatch):
    monkeypatch.setattr(decode, "gpu_decode_unavailable", lambda: gpu.NO_CUDA)
    run = VideoDecoder(clip, CFG)
    list(run)
    assert run.stats.decoder in ("decord", "pyav") and not (run.stats.fallback_reason or "").count("GPU")


def test_a_codec_nvdec_lacks_goes_to_the_cpu_with_the_reason(tmp_path, fake_gpu):
    video = write_video(tmp_path / "clip.mkv", make_frames(), fps=VIDEO_FPS, codec="mpeg2video")
    run = VideoDecoder(video, CFG)
    list(run)
    assert run.stats.decoder in ("decord", "pyav")
    assert "not on the GPU: NVDEC does not decode mpeg2video video" in run.stats.fallback_reason


def test_a_gpu_failure_part_way_hands_over_without_losing_or_repeating_frames(clip, fake_gpu):
    fake_gpu.setattr(decode, "TorchcodecReader", functools.partial(FakeGpuReader, fail_after=3))
    run = VideoDecoder(clip, CFG)
    frames = np.concatenate([w.frames for w in run])
    assert run.stats.decoder.startswith("nvdec+") and "simulated NVDEC failure" in run.stats.fallback_reason
    assert frame_indices(frames).tolist() == [0, 5, 10, 15, 20, 25]


def test_keyframes_are_read_on_the_gpu_when_it_is_there(clip, fake_gpu):
    run = VideoDecoder(clip, DecodeConfig(fps=2.0, window_frames=4, size=32, keyframes=True))
    list(run)
    assert run.stats.decoder == "nvdec"


def test_explicit_torchcodec_fails_loudly(clip, fake_gpu, monkeypatch):
    assert DecodeConfig(decoder="torchcodec").decoder == "torchcodec"
    with pytest.raises(ConfigError, match="local files only"):
        VideoDecoder("http://127.0.0.1:1/a.mp4", DecodeConfig(decoder="torchcodec"))
    fake_gpu.setattr(decode, "TorchcodecReader", functools.partial(FakeGpuReader, fail_after=1))
    with pytest.raises(CorruptVideoError, match="nvdec could not decode"):
        list(VideoDecoder(clip, DecodeConfig(decoder="torchcodec", fps=2.0, size=32)))
    monkeypatch.setattr(decode, "gpu_decode_unavailable", lambda: gpu.NO_CUDA)
    with pytest.raises(UnsupportedCodecError, match="CUDA is not available"):
        VideoDecoder(clip, DecodeConfig(decoder="torchcodec"))


def test_availability_is_cheap_and_typed_without_torchcodec(monkeypatch):
    gpu.gpu_decode_unavailable.cache_clear()
    monkeypatch.setattr(gpu.importlib.util, "find_spec", lambda name: None)
    try:
        assert gpu.gpu_decode_unavailable() == gpu.NOT_INSTALLED
    finally:
        gpu.gpu_decode_unavailable.cache_clear()


def test_resize_frames_matches_shape_and_range():
    frames = torch.randint(0, 256, (3, 3, 64, 96), dtype=torch.uint8)  # (T, 3, H, W)
    out = gpu.resize_frames(frames, 32, 48)
    assert out.shape == (3, 32, 48, 3) and out.dtype == torch.uint8
    flat = torch.full((1, 3, 64, 96), 77, dtype=torch.uint8)
    assert (gpu.resize_frames(flat, 32, 48) == 77).all()  # a flat image stays flat (no ringing)
    assert torch.equal(gpu.resize_frames(frames, 64, 96), frames.permute(0, 2, 3, 1))  # same size: a permute


@needs_torchcodec
def test_the_reader_on_cpu_picks_the_same_frames_as_pyav(clip):
    source = resolve_source(clip)
    reader = gpu.TorchcodecReader(source, height=32, width=42, batch=4, device="cpu")
    got = list(reader.frames(FrameSampler(2.0, None, None)))
    ref = list(
        PyAVReader(source, height=32, width=42, fps=VIDEO_FPS, timeout_s=5).frames(FrameSampler(2.0, None, None))
    )
    assert [p for _, p in got] == pytest.approx([p for _, p in ref], abs=1e-6)
    frames, expected = np.stack([f for f, _ in got]), np.stack([f for f, _ in ref])
    assert frames.shape == expected.shape and frame_indices(frames).tolist() == frame_indices(expected).tolist()
    assert np.abs(frames.astype(int) - expected).mean() < 8  # different scalers, same picture
    assert reader.progress.frames_decoded >= 26 and reader.progress.stream_end == pytest.approx(2.9)


@needs_torchcodec
def test_the_reader_on_cpu_reads_keyframes_and_a_range(clip):
    source = resolve_source(clip)
    times, keyframes = gpu.frame_index(source)
    assert len(times) == 30 and keyframes[0] == 0
    reader = gpu.TorchcodecReader(source, height=32, width=42, batch=4, keyframes_only=True, device="cpu")
    pts = [p for _, p in reader.frames(FrameSampler(2.0, None, None))]
    assert pts == pytest.approx(times[keyframes].tolist())
    ranged = gpu.TorchcodecReader(source, height=32, width=42, batch=4, device="cpu")
    assert [p for _, p in ranged.frames(FrameSampler(2.0, 1.0, 2.0))] == pytest.approx([1.0, 1.5])


@needs_torchcodec
def test_pyav_and_torchcodec_frame_indexes_agree(clip):
    source = resolve_source(clip)
    times, keyframes = gpu.frame_index(source)
    times_av, keyframes_av = gpu._pyav_frame_index(source)
    assert times == pytest.approx(times_av) and keyframes.tolist() == keyframes_av.tolist()
