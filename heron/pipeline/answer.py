"""Answer stage: a question + the cached windows of a time range → answer text and the spans used."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from heron.config import AnswerConfig
from heron.errors import EmptyQuestionError, EmptyVideoError
from heron.pipeline.prompts import evenly_spaced, question_prompt
from heron.state import DialogueStore, LatentStore

if TYPE_CHECKING:  # the driver imports this module for Answer; only the actor needs torch
    from heron.models.heron_model import HeronModel


@dataclass
class Answer:
    text: str
    spans: list[tuple[float, float]]  # (start, end) seconds of each window the answer used
    session_id: str
    source_id: str
    windows_used: int
    seconds: float  # wall time to answer
    warnings: list[str] = field(default_factory=list)  # e.g. words of the question the model does not know

    def to_dict(self) -> dict:
        return asdict(self)


def check_question(question: str) -> str:
    if not question or not question.strip():
        raise EmptyQuestionError("the question is empty; ask something about the video")
    return question.strip()


class AnswerStage:
    """Holds the gated LM; reads latents and dialogue from Redis, writes the new turns back.

    Stateless between calls (everything that matters is in Redis), so Ray may restart it or run
    several calls at once: each call's media lives only inside its own ``generate``.
    """

    def __init__(self, model: HeronModel, latents: LatentStore, dialogue: DialogueStore, cfg: AnswerConfig):
        self.model, self.latents, self.dialogue, self.cfg = model.eval(), latents, dialogue, cfg

    def __call__(
        self,
        question: str,
        source_id: str,
        *,
        start: float = 0.0,
        end: float = float("inf"),
        session_id: str | None = None,
    ) -> Answer:
        clock = time.perf_counter()
        question = check_question(question)
        session_id = session_id or uuid.uuid4().hex[:12]
        spans = self.latents.window_spans(source_id, start, min(end, 1e12))  # times only, no latents
        if not spans:
            raise EmptyVideoError(f"no encoded windows of source {source_id} between {start:g} s and {end:g} s")
        # Fetch only the windows that go into the prompt: cost stays flat however long the stream.
        chosen = self.latents.get_chunks(
            source_id, [spans[i][0] for i in evenly_spaced(len(spans), self.cfg.max_windows)]
        )
        media = np.concatenate([c.latents for c in chosen]).astype(np.float32)  # [k*R, d]
        turns = self.dialogue.get_dialogue(session_id, last_n=2 * self.cfg.history_turns)
        history = [
            (q.text, a.text) for q, a in zip(turns[::2], turns[1::2]) if q.role == "user" and a.role == "assistant"
        ]
        text = self.model.generate(
            question_prompt(question, history), [media], max_new_tokens=self.cfg.max_new_tokens
        ).strip()
        spans = [(c.t_start, c.t_end) for c in chosen]
        self.dialogue.append_turns(
            session_id,
            [
                (
                    "user",
                    question,
                    {"source_id": source_id, "start": start, "end": None if end == float("inf") else end},
                ),
                ("assistant", text, {"spans": spans}),
            ],
        )
        unknown = self.model.unknown_words(question)
        warnings = (
            [f"the model does not know {', '.join(repr(w) for w in unknown)}: the answer may be a guess"]
            if unknown
            else []
        )
        return Answer(text, spans, session_id, source_id, len(chosen), time.perf_counter() - clock, warnings)
