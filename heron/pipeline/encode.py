"""Encode stage: windows of frames → MediaChunks (visual latents, and retrieval embeddings when the
model has them), frames batched across windows."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import torch

from heron.encoders.visual_encoder import VisualEncoder
from heron.models.heron_model import HeronModel
from heron.types import FrameBatch, MediaChunk

log = logging.getLogger(__name__)


class EncodeStage:
    """Holds the encoder (``load_encoder``; a whole model works too); ``__call__`` encodes a list
    of windows in as few forward passes as it can.

    Windows with the same frame shape (all but possibly the last of a source) go through the
    vision backbone and resampler as one batch [B, T, H, W, 3].
    """

    def __init__(self, model: VisualEncoder | HeronModel):
        self.model = model.eval()
        encoder = model.encoder if isinstance(model, HeronModel) else model
        self.retrieval = encoder.retrieval  # also embeds each window for question-aware selection
        self.windows_encoded = 0  # counters for reports and tests (this process only)
        self.calls = 0

    @torch.no_grad()
    def __call__(self, batches: list[FrameBatch]) -> list[MediaChunk]:
        if not batches:
            return []
        self.calls += 1
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, batch in enumerate(batches):
            groups[batch.frames.shape].append(i)
        latents: list[np.ndarray | None] = [None] * len(batches)
        embeddings: list[np.ndarray | None] = [None] * len(batches)
        for indices in groups.values():
            frames = torch.from_numpy(np.stack([batches[i].frames for i in indices]))  # [B, T, H, W, 3]
            out = self.model.encode(frames).float().cpu().numpy()  # [B, R, d]
            found = self.retrieval.embed_windows(frames).cpu().numpy() if self.retrieval is not None else None  # [B, p]
            for row, i in enumerate(indices):
                latents[i] = out[row]
                embeddings[i] = None if found is None else found[row]
        self.windows_encoded += len(batches)
        return [
            MediaChunk(b.source_id, b.index, b.t_start, b.t_end, lat, emb)
            for b, lat, emb in zip(batches, latents, embeddings)
        ]

    def counters(self) -> dict[str, int]:
        return {"calls": self.calls, "windows_encoded": self.windows_encoded}
