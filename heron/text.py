"""Wording for people, shared by every layer: plurals and numbers rounded as a person reads them."""

from __future__ import annotations

# How a model names one of the windows it was given, counted from the first (the demo model's
# answers to "when" questions; heron.pipeline.when maps them back to time).
ORDINALS: tuple[str, ...] = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 window``, ``2 windows`` (``words``: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def seconds(value: float | None, digits: int = 1) -> str:
    """``1.9 s``; ``?`` when unknown."""
    return "?" if value is None else f"{value:.{digits}f} s"


def span(start: float, end: float) -> str:
    """``4.0–9.9 s``."""
    return f"{start:.1f}–{end:.1f} s"
