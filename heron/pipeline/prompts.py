"""Interleaved prompts for questions about video: media first, then the dialogue.

    <image>Question: What moves? Answer: a red square<|endofchunk|>Question: And then? Answer:

The selected windows of the source are given to the model as one media item (their visual
tokens concatenated, in time order) so that, under Flamingo's "attend to the media right before
you" masking, every text token sees all of them.
"""

from __future__ import annotations

from heron.tokens import END_OF_CHUNK_TOKEN, IMAGE_TOKEN


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


MEDIA = None  # in a chat turn's parts: where a media item sits


def chat_prompt(turns: list[tuple[str, list[str | None]]], style: str = "qa") -> str:
    """A Flamingo prompt from chat turns ``(role, parts)``; a part is text or ``MEDIA``.

    ``qa`` (the default; how the demo model was trained): each user turn's media come first, then
    ``Question: <its text> Answer:``; each assistant turn is ``<text><|endofchunk|>``.
    ``interleaved``: parts in order, ``<|endofchunk|>`` after text that the next media item
    follows, so few-shot prompts read as in Flamingo: ``<image>this clip: a dog enters.<|endofchunk|>
    <image>this clip: a car leaves.<|endofchunk|><image>this clip:`` → the model completes it.
    System turns are text in ``interleaved`` and left out of ``qa`` (a model trained on questions
    and answers only would read them as noise). One ``<image>`` per ``MEDIA`` either way, in order.
    """
    if style not in ("qa", "interleaved"):
        raise ValueError(f"prompt style must be 'qa' or 'interleaved', got {style!r}")
    out: list[str] = []
    for role, parts in turns:
        texts = [p.strip() for p in parts if p is not MEDIA and p.strip()]
        if role == "assistant":
            out.append(f" {' '.join(texts)}{END_OF_CHUNK_TOKEN}")
        elif style == "qa" and role == "user":
            media = IMAGE_TOKEN * sum(p is MEDIA for p in parts)
            out.append(f"{media}Question: {' '.join(texts)} Answer:")
        elif style == "interleaved" and role in ("user", "system"):
            for i, part in enumerate(parts):
                if part is MEDIA:
                    out.append(IMAGE_TOKEN)
                elif part.strip():
                    follows = any(p is MEDIA for p in parts[i + 1 :])
                    out.append(part.strip() + (END_OF_CHUNK_TOKEN if follows else ""))
    return "".join(out)
