"""Interleaved prompts for questions about video: media first, then the dialogue.

    <image>Question: What moves? Answer: a red square<|endofchunk|>Question: And then? Answer:

The selected windows of the source are given to the model as one media item (their visual
tokens concatenated, in time order) so that, under Flamingo's "attend to the media right before
you" masking, every text token sees all of them.
"""

from __future__ import annotations

from heron.models.tokenizer import END_OF_CHUNK_TOKEN, IMAGE_TOKEN


def question_prompt(question: str, history: list[tuple[str, str]] = ()) -> str:
    """One <image> followed by earlier (question, answer) pairs and the new question."""
    turns = "".join(f"Question: {q} Answer: {a}{END_OF_CHUNK_TOKEN}" for q, a in history)
    return f"{IMAGE_TOKEN}{turns}Question: {question.strip()} Answer:"


def evenly_spaced(n_items: int, limit: int) -> list[int]:
    """Indices of at most ``limit`` items spread evenly over ``n_items`` (first and last kept)."""
    if n_items <= limit:
        return list(range(n_items))
    if limit == 1:
        return [n_items - 1]
    return sorted({round(i * (n_items - 1) / (limit - 1)) for i in range(limit)})
