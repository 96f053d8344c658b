"""Answers to "when" questions: the model names a window it was given; this names its time.

A model trained on long videos (docs/long_videos.md) answers "When does the red square appear?"
with the ordinal of the window, among those in its prompt, that the event starts in ("third").
The prompt's windows are known, so that word maps back to the window's span in the video.
"""

from __future__ import annotations

from heron.text import ORDINALS, span


def is_when_question(question: str | None) -> bool:
    return bool(question) and question.strip().lower().startswith("when ")


def resolve_when(answer: str, spans: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The span of the window an ordinal answer names among ``spans`` (the prompt's windows, in
    order); None when the answer names none of them."""
    word = answer.strip().strip(".").lower()
    if word in ORDINALS and ORDINALS.index(word) < len(spans):
        return spans[ORDINALS.index(word)]
    return None


def when_text(found: tuple[float, float]) -> str:
    """How a "when" answer reads: ``at 12.0–14.0 s``."""
    return f"at {span(*found)}"
