"""Frames → R visual tokens: vision backbone, time embeddings, Perceiver Resampler."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from heron.config import ResamplerConfig
from heron.encoders.resampler import PerceiverResampler
from heron.encoders.time_embeddings import TimeEmbeddings
from heron.encoders.vision import VisionBackbone
from heron.errors import FrameFormatError


class VisualEncoder(nn.Module):
    """uint8 frames [B, T, H, W, 3] → latents [B, R, d] (d = the vision tower's width)."""

    def __init__(self, backbone: VisionBackbone, cfg: ResamplerConfig):
        super().__init__()
        self.backbone = backbone
        self.time_embeddings = TimeEmbeddings(max_frames=cfg.max_frames, dim=backbone.dim)
        self.resampler = PerceiverResampler(
            dim=backbone.dim, depth=cfg.depth, heads=cfg.heads, head_dim=cfg.head_dim,
            num_latents=cfg.num_latents, ffw_mult=cfg.ffw_mult,
        )

    @property
    def dim(self) -> int:
        return self.backbone.dim

    @property
    def num_latents(self) -> int:
        return self.resampler.latents.shape[0]

    def resample(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, T, S, d] → latents [B, R, d]."""
        x = self.time_embeddings(features)  # [B, T, S, d]
        return self.resampler(rearrange(x, "b t s d -> b (t s) d"))  # [B, R, d]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] → latents [B, R, d]."""
        if frames.ndim != 5:
            raise FrameFormatError(f"frames must be [B, T, H, W, 3], got shape {tuple(frames.shape)}")
        # The backbone is frozen: skip its autograd graph unless someone unfroze it on purpose.
        backbone_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(backbone_grad):
            features = self.backbone(frames)  # [B, T, S, d]
        return self.resample(features)
