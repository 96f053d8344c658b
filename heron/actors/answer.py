"""The answer actor: the gated LM, reading latents and dialogue from Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING

from heron.config import PipelineConfig
from heron.state import DialogueStore, LatentStore

if TYPE_CHECKING:
    from heron.pipeline.answer import Answer


class AnswerActor:
    def __init__(self, cfg: PipelineConfig, latents: LatentStore, dialogue: DialogueStore):
        from heron.models import load_model
        from heron.pipeline.answer import AnswerStage

        self.stage = AnswerStage(
            load_model(cfg.model, device=cfg.device, trainable="none"), latents, dialogue, cfg.answer
        )

    def ready(self) -> bool:
        """True once the model is loaded (the constructor has run)."""
        return True

    def answer(self, question: str, source_id: str, start: float, end: float, session_id: str | None) -> Answer:
        return self.stage(question, source_id, start=start, end=end, session_id=session_id)
