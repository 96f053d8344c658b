"""GPU backend: NVDEC through torchcodec's CUDA decoder, Heron's sampling rule, resize on the GPU.

Every frame's pts comes from a demux-only pass (torchcodec's ``Demuxer.scan`` where present, else
PyAV's packets), ``FrameSampler`` picks the frames, and ``get_frames_at`` decodes one window of
indices at a time on the GPU. The frames are resized there (``resize_frames``) and only the small
resized window is copied to host memory, since the ``FrameReader`` contract is numpy and decode and
encode run in different processes (Ray actors). Keyframes only: the same with the keyframes' indices
(torchcodec seeks to each and decodes one frame, never a whole GOP).

torch and torchcodec are imported lazily: a CPU machine without them never pays for the import.
torchcodec falls back to CPU decoding by itself for streams NVDEC cannot take (codec, profile,
size); this reader refuses that fallback (``ReaderFailed`` with torchcodec's reason), so the
decoder's own CPU backends read them and the reason reaches ``DecodeStats.fallback_reason``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from heron.pipeline.decode.container import VideoInfo, first_line, open_container, video_stream
from heron.pipeline.decode.reader import FrameSelector, ReaderFailed, ReadProgress
from heron.pipeline.sources import Source

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# What torchcodec's NVDEC interface maps (MPEG-1/2, MJPEG and VC-1 are not); the GPU may still
# refuse one (no AV1 on Hopper), which torchcodec reports as its CPU fallback.
NVDEC_CODECS = ("h264", "hevc", "av1", "vp9", "vp8", "mpeg4")
# The reasons that mean "a machine without a GPU decoder", which is no fallback worth reporting.
NOT_INSTALLED, NO_GPU_VISIBLE, NO_CUDA = (
    "torchcodec is not installed",
    "no GPU is visible to this process",
    "CUDA is not available",
)
NO_GPU = (NOT_INSTALLED, NO_GPU_VISIBLE, NO_CUDA)


@functools.cache
def gpu_decode_unavailable() -> str | None:
    """Why torchcodec's CUDA decoder cannot run in this process (None: it can).

    Cheap where it cannot: no torch import without torchcodec installed or with no GPU visible
    (Ray gives an actor without ``num_gpus`` an empty CUDA_VISIBLE_DEVICES).
    """
    if importlib.util.find_spec("torchcodec") is None:
        return NOT_INSTALLED
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return NO_GPU_VISIBLE
    import torch

    if not torch.cuda.is_available():
        return NO_CUDA
    try:
        import torchcodec

        torchcodec._core.get_ffmpeg_library_versions()  # loads libtorchcodec_coreN: needs FFmpeg 4-9
    except Exception as exc:  # ImportError, or RuntimeError("Could not load libtorchcodec...")
        return f"torchcodec cannot load: {first_line(exc)}"
    return None


def gpu_unsuited(source: Source, info: VideoInfo) -> str | None:
    """Why this source should not be decoded on the GPU (None: it may)."""
    if source.is_url:
        return "URLs are read by PyAV (the GPU reader scans the whole file first)"
    if info.codec not in NVDEC_CODECS:
        return f"NVDEC does not decode {info.codec} video"
    return None


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 [T, 3, H, W] on any device → uint8 [T, height, width, 3] on the same device.

    Bilinear with antialiasing (area-like when shrinking), as the encoders' preprocessing does.
    """
    import torch.nn.functional as F

    if frames.shape[-2:] != (height, width):
        resized = F.interpolate(frames.float(), size=(height, width), mode="bilinear", antialias=True)  # (T, 3, h, w)
        frames = resized.round_().clamp_(0, 255).to(frames.dtype)
    return frames.permute(0, 2, 3, 1).contiguous()  # (T, h, w, 3)


class TorchcodecReader:
    """Frames of a local file decoded by torchcodec on ``device`` and resized there.

    ``device="cuda"`` is NVDEC (the decoder's choice); ``"cpu"`` runs the same logic on FFmpeg's
    software decoder (tests on machines without a GPU).
    """

    name = "nvdec"

    def __init__(
        self, source: Source, *, height: int, width: int, batch: int, keyframes_only: bool = False, device: str = "cuda"
    ):
        self.source, self.path, self.height, self.width, self.batch = source, source.path, height, width, batch
        self.keyframes_only, self.device = keyframes_only, device
        self.progress = ReadProgress()

    def frames(self, selector: FrameSelector, seek_to: float | None = None) -> Iterator[tuple[np.ndarray, float]]:
        decoder = self._open()
        times, keyframes = frame_index(self.source)  # (N,) s in pts order; (K,) indices
        candidates = keyframes if self.keyframes_only else range(len(times))
        chosen = [int(i) for i in candidates if selector.keep(float(times[i]))]  # seek_to: the selector's job
        logger.info("decoding %s with torchcodec on %s (%d frames kept)", self.path, self.device, len(chosen))
        previous = chosen[0] - 1 if chosen else 0
        for first in range(0, len(chosen), self.batch):
            indices = chosen[first : first + self.batch]
            try:
                decoded = decoder.get_frames_at(indices)  # .data (T, 3, H, W) uint8 on device
            except RuntimeError as exc:  # torchcodec reports every FFmpeg/NVDEC failure so
                raise ReaderFailed(f"torchcodec: {first_line(exc)}") from exc
            got = decoded.pts_seconds.numpy()  # (T,) s
            if not np.allclose(got, times[indices], atol=1e-3):
                raise ReaderFailed(f"torchcodec's frames are not at the scanned times ({got[0]:.3f} s)")
            window = resize_frames(decoded.data, self.height, self.width).cpu().numpy()  # (T, h, w, 3)
            stepped = indices if self.keyframes_only else range(previous + 1, indices[-1] + 1)
            for index in stepped:
                self.progress.saw_frame(float(times[index]))
            previous = indices[-1]
            yield from zip(window, (float(times[i]) for i in indices), strict=True)
        if len(times):
            self.progress.stream_end = float(times[-1])

    def _open(self):
        try:
            from torchcodec.decoders import VideoDecoder

            decoder = VideoDecoder(str(self.path), device=self.device, seek_mode="exact")
        except Exception as exc:  # ImportError, or RuntimeError from FFmpeg/NVDEC
            raise ReaderFailed(f"torchcodec cannot open it: {first_line(exc)}") from exc
        fallback = getattr(decoder, "cpu_fallback", None)  # the nvdec backend knows at construction
        if self.device != "cpu" and fallback:
            raise ReaderFailed(f"NVDEC cannot decode it ({fallback})")
        return decoder


def frame_index(source: Source) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's pts (float64 [N] s, presentation order = torchcodec's frame index) and the
    indices of the keyframes (int [K]), without decoding."""
    try:
        from torchcodec.decoders import Demuxer  # new in 0.17; the same numbers as PyAV's packets
    except ImportError:
        return _pyav_frame_index(source)
    try:
        index = Demuxer(str(source.path)).streams[0].scan()
        return index.pts_seconds.numpy().astype(np.float64), index.key_frame_indices.numpy().astype(np.int64)
    except Exception as exc:  # a stream layout the new API does not take: PyAV's packets say the same
        logger.info("torchcodec's Demuxer cannot scan %s (%s); using PyAV's packets", source, first_line(exc))
        return _pyav_frame_index(source)


def _pyav_frame_index(source: Source) -> tuple[np.ndarray, np.ndarray]:
    pts: list[float] = []
    key: list[bool] = []
    with open_container(source, 10.0) as container:
        stream = video_stream(container)
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size:
                pts.append(float(packet.pts * stream.time_base))
                key.append(bool(packet.is_keyframe))
    order = np.argsort(pts, kind="stable")
    return np.asarray(pts, dtype=np.float64)[order], np.flatnonzero(np.asarray(key, dtype=bool)[order])
