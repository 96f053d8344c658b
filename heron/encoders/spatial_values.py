"""Spatial values: where each media token is (and how that moves), told to the resampler's values.

A large CLIP keeps its input position embeddings in its patch tokens; the demo's tiny tower,
trained only to match whole-frame captions, keeps little of them, and a Perceiver is blind to the
order of its inputs. Added to the tokens themselves, learned positions made the demo model worse:
latents that can select by place become place slots, and a moving object passes through several.
So they are added to the attention's *values* only: a latent still selects by what and when, and
its output reports where the tokens it chose were (docs/model.md, "Spatial values").

"space_time" multiplies each position by a projection of its frame's time embedding. A latent that
selects one object in every frame then reads Σ_t a_t·where(s_t)·when(t): a product of place and
time, which can be the object's displacement. Without it, motion needs one latent per object *and*
per time span. The time factor comes from the time embeddings, so zeroing them still removes all
order (tested).
"""

from __future__ import annotations

import torch
from torch import nn

from heron.errors import FrameFormatError


class SpatialValues(nn.Module):
    """A learned vector per token position within a frame, optionally modulated by time."""

    def __init__(self, *, tokens_per_frame: int, dim: int, timed: bool):
        super().__init__()
        self.space = nn.Parameter(torch.randn(tokens_per_frame, dim) * 0.02)  # [S, d]
        # zero-initialised: "space_time" starts as "space" and learns how time modulates it
        self.time_mix = nn.Linear(dim, dim, bias=False) if timed else None
        if self.time_mix is not None:
            nn.init.zeros_(self.time_mix.weight)

    def forward(self, time_table: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
        """time_table [..., L, 1, d] (each frame's time embedding) → value positions [..., L*S, d]."""
        if tokens_per_frame != self.space.shape[0]:
            raise FrameFormatError(
                f"spatial values are learned for {self.space.shape[0]} tokens per frame, "
                f"the features have {tokens_per_frame}: frames must be encoded at the tower's image size"
            )
        where = self.space.expand(*time_table.shape[:-2], -1, -1)  # [..., L, S, d]
        if self.time_mix is not None:
            where = where * (1 + self.time_mix(time_table.to(where.dtype)))  # [..., L, S, d]
        return where.flatten(-3, -2)  # [..., L*S, d]
