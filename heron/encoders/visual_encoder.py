"""Frames → R visual tokens: vision backbone, time embeddings, Perceiver Resampler.

``time_spans`` is a temporal pyramid. At level N the window's frames are cut into N equal spans,
each resampled on its own by the same latent queries, and each span's tokens get the mean time
embedding of its frames; level 1 is Flamingo's resampling of the whole window. The levels' tokens
are concatenated. Every level and span shares every weight, so when a token happened is told only
by the time embeddings: zeroing them still removes all order (tested).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from heron.config import ResamplerConfig
from heron.encoders.inference import eval_mode
from heron.encoders.preprocess import check_frames
from heron.encoders.resampler import PerceiverResampler
from heron.encoders.retrieval import RetrievalEmbedder
from heron.encoders.spatial_values import SpatialValues
from heron.encoders.time_embeddings import TimeEmbeddings
from heron.encoders.vision import VisionBackbone
from heron.errors import FrameFormatError


class VisualEncoder(nn.Module):
    """uint8 frames [B, T, H, W, 3] → latents [B, R, d] (d = the vision tower's width)."""

    def __init__(self, backbone: VisionBackbone, cfg: ResamplerConfig):
        super().__init__()
        self.backbone = backbone
        # windows and questions in a joint text-video space (set by the builder when configured)
        self.retrieval: RetrievalEmbedder | None = None
        self.time_embeddings = TimeEmbeddings(max_frames=cfg.max_frames, dim=backbone.dim)
        self.spatial_values = (
            SpatialValues(
                tokens_per_frame=backbone.tokens_per_frame, dim=backbone.dim, timed=cfg.spatial_values == "space_time"
            )
            if cfg.spatial_values != "none"
            else None
        )
        self.time_spans = list(cfg.time_spans)
        self.resampler = PerceiverResampler(
            dim=backbone.dim,
            depth=cfg.depth,
            heads=cfg.heads,
            head_dim=cfg.head_dim,
            num_latents=cfg.num_latents // sum(cfg.time_spans),
            ffw_mult=cfg.ffw_mult,
            competing=cfg.competing_latents // sum(cfg.time_spans),
        )

    @property
    def dim(self) -> int:
        return self.backbone.dim

    @property
    def num_latents(self) -> int:
        return self.resampler.latents.shape[0] * sum(self.time_spans)

    def resample(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, T, S, d] → latents [B, R, d]."""
        x = self.time_embeddings(features)  # [B, T, S, d]
        return torch.cat([self._resample_spans(x, spans) for spans in self.time_spans], dim=1)  # [B, R, d]

    def _resample_spans(self, x: torch.Tensor, spans: int) -> torch.Tensor:
        """Time-embedded features [B, T, S, d] → [B, spans * R', d], R' latents per span in order."""
        if spans == 1:  # Flamingo
            frames = torch.arange(x.shape[1], device=x.device)  # [T]
            return self.resampler(rearrange(x, "b t s d -> b (t s) d"), self._where(frames, x.shape))  # [B, R', d]
        index = span_frames(x.shape[1], spans).to(x.device)  # [N, L]
        span_tokens = rearrange(x[:, index], "b n l s d -> (b n) (l s) d")  # [B*N, L*S, d]
        latents = self.resampler(span_tokens, self._where(index, x.shape))  # [B*N, R', d]
        latents = rearrange(latents, "(b n) r d -> b n r d", n=spans)  # [B, N, R', d]
        # Each span's tokens carry when it was (the mean embedding of its frames), so the LM can
        # tell early tokens from late ones; nothing but the time embeddings says when.
        span_time = self.time_embeddings.table(x.shape[1])[index].mean(dim=1)  # [N, 1, d]
        return rearrange(latents + span_time.to(latents.dtype), "b n r d -> b (n r) d")  # [B, N*R', d]

    def _where(self, frames: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
        """Spatial values of the resampled frames, or None without them.

        frames: indices [L] (one run of frames) or [N, L] (N spans); shape: the features' [B, T, S, d].
        Returns [L*S, d], or [B*N, L*S, d] in the resampler's (b n) batch order.
        """
        if self.spatial_values is None:
            return None
        batch, num_frames, tokens_per_frame, _ = shape
        time_table = self.time_embeddings.table(num_frames)[frames]  # [L, 1, d] or [N, L, 1, d]
        where = self.spatial_values(time_table, tokens_per_frame)  # [L*S, d] or [N, L*S, d]
        return where if frames.ndim == 1 else where.repeat(batch, 1, 1)  # [L*S, d] or [B*N, L*S, d]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] → latents [B, R, d]."""
        if frames.ndim != 5:
            raise FrameFormatError(f"frames must be [B, T, H, W, 3], got shape {tuple(frames.shape)}")
        # The backbone is frozen: skip its autograd graph unless someone unfroze it on purpose.
        backbone_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(backbone_grad):
            features = self.backbone(frames)  # [B, T, S, d]
        return self.resample(features)

    @torch.no_grad()
    def encode(self, frames, pts=None) -> torch.Tensor:
        """Inference entry point: latents for windows of frames (numpy or torch, any device).

        frames: uint8 [B, T, H, W, 3] (or one window [T, H, W, 3]); pts: seconds [B, T] / [T],
        checked against the frames (same T, non-decreasing) when given. Time embeddings index
        frames by position in the window, so windows should be sampled at a fixed rate.
        Returns latents [B, R, d] (or [R, d] for one window).
        """
        frames = torch.as_tensor(frames)
        check_frames(frames)
        single = frames.ndim == 4
        if single:
            frames = frames[None]
        if frames.ndim != 5:
            raise FrameFormatError(f"frames must be [T, H, W, 3] or [B, T, H, W, 3], got shape {tuple(frames.shape)}")
        if pts is not None:
            _check_pts(torch.as_tensor(pts, dtype=torch.float64), frames.shape[:2], single)
        with eval_mode(self):  # whatever mode the caller left it in
            latents = self(frames.to(next(self.parameters()).device))  # [B, R, d]
        return latents[0] if single else latents


def span_frames(num_frames: int, spans: int) -> torch.Tensor:
    """Frame indices [spans, L] of ``spans`` equal runs of L = ceil(T / spans) frames covering
    0..T-1 in order: evenly spaced starts, so runs overlap when T is not a multiple of ``spans``
    and repeat frames when T < spans (one image gives every span the same frame)."""
    length = -(-num_frames // spans)
    last_start = num_frames - length
    starts = torch.linspace(0, last_start, spans).round().long()  # [spans]
    return starts[:, None] + torch.arange(length)  # [spans, L]


def _check_pts(pts: torch.Tensor, frames_shape: torch.Size, single: bool) -> None:
    if single:
        pts = pts[None]
    if tuple(pts.shape) != tuple(frames_shape):
        raise FrameFormatError(
            f"pts must have shape {tuple(frames_shape)} (one time per frame), got {tuple(pts.shape)}"
        )
    if not torch.isfinite(pts).all() or (pts.diff(dim=-1) < 0).any():
        raise FrameFormatError("pts must be finite and non-decreasing within each window")
