"""Learned time embeddings added to each frame's features before flattening (Flamingo §2.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TimeEmbeddings(nn.Module):
    """A learned vector per frame position, broadcast over the S spatial tokens.

    Flamingo trains on 8 frames and infers on 30: a window longer than ``max_frames`` gets the
    learned table linearly interpolated to its length, so the first and last frames keep the
    first and last embeddings and order is preserved.
    """

    def __init__(self, *, max_frames: int, dim: int):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(max_frames, 1, dim) * 0.02)  # [T_max, 1, d]

    def table(self, num_frames: int) -> torch.Tensor:
        """The embedding of each of ``num_frames`` frames, [T, 1, d]."""
        table = self.embeddings  # [T_max, 1, d]
        if num_frames > table.shape[0]:
            stretched = F.interpolate(
                table.permute(1, 2, 0), size=num_frames, mode="linear", align_corners=True
            )  # [1, d, T]
            table = stretched.permute(2, 0, 1)  # [T, 1, d]
        return table[:num_frames]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, S, d] -> features + time embedding of each frame, same shape."""
        return features + self.table(features.shape[1]).to(features.dtype)
