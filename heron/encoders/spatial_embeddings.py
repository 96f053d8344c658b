"""Learned spatial embeddings: where in the frame each media token is, told to the resampler's values.

A large CLIP keeps its input position embeddings in its patch tokens; the demo's tiny tower,
trained only to match whole-frame captions, does not (a linear probe reads a patch token's column
1.1 columns off on a 6-column grid). Added to the tokens themselves, learned positions made the
demo model worse: latents that can select by place become place slots, and a moving object passes
through several of them. So they are added to the attention's *values* only: a latent still
selects by what and when, and its output reports where the tokens it chose were
(docs/model.md, "Spatial values").
"""

from __future__ import annotations

import torch
from torch import nn

from heron.errors import FrameFormatError


class SpatialEmbeddings(nn.Module):
    """A learned vector per token position within a frame, the same for every frame."""

    def __init__(self, *, tokens_per_frame: int, dim: int):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(tokens_per_frame, dim) * 0.02)  # [S, d]

    def forward(self, num_frames: int, tokens_per_frame: int) -> torch.Tensor:
        """The embedding of every token of ``num_frames`` flattened frames, [T*S, d]."""
        if tokens_per_frame != self.embeddings.shape[0]:
            raise FrameFormatError(
                f"spatial embeddings are learned for {self.embeddings.shape[0]} tokens per frame, "
                f"the features have {tokens_per_frame}: frames must be encoded at the tower's image size"
            )
        return self.embeddings.repeat(num_frames, 1)  # [T*S, d]
