"""Frame preprocessing as batched torch ops on the backbone's device (no per-frame Python/PIL).

Mirrors the Hugging Face image processors: CLIP resizes the short side to ``image_size`` (bicubic)
and centre-crops; SigLIP resizes straight to ``image_size`` squared. Then rescale to [0, 1] and
normalise with the backbone's mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from heron.errors import FrameFormatError


@dataclass(frozen=True)
class PreprocessSettings:
    image_size: int  # output is image_size x image_size
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str  # "bicubic" | "bilinear"
    center_crop: bool  # True: resize short side + crop (CLIP); False: squash to square (SigLIP)


def check_frames(frames: torch.Tensor) -> None:
    """Frames must be uint8 [..., H, W, 3] (RGB, channels last, as decoders produce them)."""
    if frames.dtype != torch.uint8:
        raise FrameFormatError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise FrameFormatError(f"frames must be [..., H, W, 3] with 3 colour channels, got shape {tuple(frames.shape)}")
    if frames.shape[-2] < 1 or frames.shape[-3] < 1:
        raise FrameFormatError(f"frames have an empty spatial size {tuple(frames.shape[-3:-1])}")


def preprocess(frames: torch.Tensor, settings: PreprocessSettings, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> normalised [N, 3, image_size, image_size] in ``dtype``."""
    check_frames(frames)
    x = frames.permute(0, 3, 1, 2).float()  # [N, 3, H, W], 0..255
    height, width = x.shape[-2:]
    size = settings.image_size
    if (height, width) != (size, size):
        if settings.center_crop:
            scale = size / min(height, width)
            target = (max(size, round(height * scale)), max(size, round(width * scale)))
        else:
            target = (size, size)
        x = F.interpolate(x, size=target, mode=settings.resize_mode, align_corners=False, antialias=True)
        x = x.clamp(0, 255)  # bicubic overshoots; PIL clamps to uint8 range too
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top : top + size, left : left + size]
    mean = torch.tensor(settings.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(settings.std, device=x.device).view(1, 3, 1, 1)
    return ((x / 255.0 - mean) / std).to(dtype)
