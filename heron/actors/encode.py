"""The encode actor: windows of frames → latents, with only the vision side of the model loaded."""

from __future__ import annotations

import os

from heron.config import PipelineConfig
from heron.types import FrameBatch, MediaChunk


class EncodeActor:
    def __init__(self, cfg: PipelineConfig):
        # Imported here, not at the top: torch + transformers take ~4 s to import, and the driver
        # and the decode actors need neither.
        from heron.models import load_encoder
        from heron.pipeline.encode import EncodeStage

        self.stage = EncodeStage(load_encoder(cfg.model, device=cfg.device))  # no LM in encode workers

    def encode(self, batches: list[FrameBatch]) -> list[MediaChunk]:
        return self.stage(batches)

    def counters(self) -> dict[str, int]:
        return self.stage.counters()

    def pid(self) -> int:
        """This actor's OS process id (fault tests kill it; soak tests watch its memory and files)."""
        return os.getpid()
