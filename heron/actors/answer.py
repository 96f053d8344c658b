"""The answer actor: the gated LM, reading latents and dialogue from Redis, answering in batches.

Ray serves many calls at once on its threads (``answer.actor.max_concurrency``); each call
submits its request to one ``Batcher``, so concurrent questions share a forward pass. ``stream``
is a generator: Ray hands its items to the caller as they are produced, so tokens reach an HTTP
client while the answer is still being generated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from heron.config import PipelineConfig
from heron.state import DialogueStore, LatentStore

if TYPE_CHECKING:
    from heron.pipeline.answer import Answer, AnswerRequest, ScoreRequest


class AnswerActor:
    def __init__(self, cfg: PipelineConfig, latents: LatentStore, dialogue: DialogueStore):
        from heron.models import load_model
        from heron.pipeline.answer import AnswerStage
        from heron.pipeline.batching import Batcher

        model = load_model(cfg.model, device=cfg.device, trainable="none")
        self.stage = AnswerStage(model, latents, dialogue, cfg.answer)
        window_s = cfg.answer.batch_window_ms / 1e3
        self.batcher = Batcher(self.stage.run, max_batch=cfg.answer.max_batch, window_s=window_s)
        # Watches of every live stream due at once are scored together (yes/no likelihoods).
        self.scorer = Batcher(self.stage.score, max_batch=4 * cfg.answer.max_batch, window_s=window_s)

    def ready(self) -> bool:
        """True once the model is loaded (the constructor has run)."""
        return True

    def pid(self) -> int:
        """This actor's OS process id (fault tests kill it; soak tests watch its memory and files)."""
        return os.getpid()

    def answer(self, request: AnswerRequest) -> Answer:
        return self.batcher.submit(request).result()

    def stream(self, request: AnswerRequest) -> Iterator[str | Answer]:
        """The answer's text deltas as they are generated, then the Answer itself."""
        ticket = self.batcher.submit(request)
        yield from ticket.stream()
        yield ticket.result()

    def score(self, requests: list[ScoreRequest]) -> list[list[float] | Exception]:
        """Each request's choice log-likelihoods; concurrent callers share forward passes."""
        tickets = [self.scorer.submit(request) for request in requests]
        return [_result(ticket) for ticket in tickets]

    def stats(self) -> dict[str, int]:
        """Batches run, requests they held, requests waiting now (metrics, tests)."""
        return {
            "batches": self.batcher.batches,
            "requests": self.batcher.batched_requests,
            "waiting": self.batcher.depth,
            "score_batches": self.scorer.batches,
            "scored": self.scorer.batched_requests,
        }


def _result(ticket):
    try:
        return ticket.result()
    except Exception as error:  # one request's error travels back in its place
        return error
