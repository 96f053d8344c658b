"""Watches: standing questions scored on each new window of a live stream, turned into events.

A watch is a yes/no question (``Is a person at the door?``). On each due window the model's
likelihoods give P(yes) (a closed choice, not parsed text); P(yes) >= threshold is a positive
window. Consecutive positive windows form one event: one alert when it opens, an update when it
closes; after a close, the watch stays quiet for ``cooldown_s`` of stream time. ``step`` is that
state machine, pure, so it is the same in a test and in a stream actor after a restart.

Few-shot watches carry labelled example clips: they go into the prompt as Flamingo in-context
examples (``<image>Question: Q Answer: yes<|endofchunk|>...``), no training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from heron.errors import ConfigError
from heron.pipeline.answer import MediaRef, check_question
from heron.tokens import END_OF_CHUNK_TOKEN, IMAGE_TOKEN

CHOICES = ("yes", "no")


@dataclass(frozen=True)
class Example:
    """A labelled example clip of a few-shot watch: a cached source's time range and its answer."""

    label: str  # "yes" | "no"
    media: MediaRef


@dataclass(frozen=True)
class Watch:
    watch_id: str
    question: str
    every: int = 1  # score on every n-th new window
    threshold: float = 0.5  # P(yes) at or above this is a positive window
    cooldown_s: float = 30.0  # stream seconds after an event closes before the next may open
    examples: tuple[Example, ...] = ()
    webhook: str | None = None  # POST each alert here (docs/live.md: retries, HMAC signature)
    webhook_secret: str | None = None

    def __post_init__(self) -> None:
        check_question(self.question)
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ConfigError(f"watch {self.watch_id}: every must be an integer >= 1, got {self.every!r}")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"watch {self.watch_id}: threshold must be within (0, 1), got {self.threshold!r}")
        if not self.cooldown_s >= 0:
            raise ConfigError(f"watch {self.watch_id}: cooldown must be >= 0 s, got {self.cooldown_s!r}")
        for example in self.examples:
            if example.label not in CHOICES:
                raise ConfigError(f"watch {self.watch_id}: an example's label must be yes or no, got {example.label!r}")

    def prompt(self) -> tuple[str, list[MediaRef]]:
        """The scoring prompt (examples first) and its media but the window's own, which goes last."""
        shots = "".join(
            f"{IMAGE_TOKEN}Question: {self.question} Answer: {e.label}{END_OF_CHUNK_TOKEN}" for e in self.examples
        )
        return f"{shots}{IMAGE_TOKEN}Question: {self.question} Answer:", [e.media for e in self.examples]

    def to_dict(self, *, include_secret: bool = False) -> dict[str, Any]:
        """As JSON; the webhook secret only when asked (what is stored, never what is shown)."""
        data = asdict(self)
        data["examples"] = [
            {
                "label": e.label,
                "source_id": e.media.source_id,
                "start": e.media.start,
                "end": None if math.isinf(e.media.end) else e.media.end,
            }
            for e in self.examples
        ]
        if not include_secret:
            data.pop("webhook_secret")
        data["webhook_signed"] = self.webhook_secret is not None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Watch:
        examples = tuple(
            Example(
                e["label"],
                MediaRef(e["source_id"], e.get("start") or 0.0, math.inf if e.get("end") is None else e["end"]),
            )
            for e in data.get("examples", ())
        )
        return cls(
            data["watch_id"],
            data["question"],
            data.get("every", 1),
            data.get("threshold", 0.5),
            data.get("cooldown_s", 30.0),
            examples,
            data.get("webhook"),
            data.get("webhook_secret"),
        )


@dataclass
class WatchState:
    """Where a watch stands; kept in Redis after every step."""

    open: bool = False
    event: int = 0  # number of the current (or last) event; alerts are keyed by it
    start: float | None = None  # stream time the current event opened
    start_index: int | None = None
    last_end: float | None = None  # end of the last positive window of the current event
    closed_at: float | None = None  # stream time the last event closed (cooldown from here)
    best: float = 0.0  # highest P(yes) of the current event
    windows: list[int] = field(default_factory=list)  # the current event's positive windows (evidence)
    last_index: int = -1  # the last window scored (a restarted actor does not score it again)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WatchState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Transition:
    """An event opening or closing: what an alert reports."""

    kind: str  # "open" | "close"
    event: int
    start: float
    end: float | None  # None while open
    score: float
    windows: tuple[int, ...]


def step(
    watch: Watch, state: WatchState, *, index: int, t_start: float, t_end: float, score: float
) -> Transition | None:
    """Fold one scored window into ``state`` (changed in place); the transition it causes, if any."""
    state.last_index = index
    positive = score >= watch.threshold
    if state.open and positive:
        state.last_end, state.best = t_end, max(state.best, score)
        state.windows = [*state.windows, index][-64:]
        return None
    if state.open:  # the event is over
        state.open, state.closed_at = False, t_start
        return Transition("close", state.event, state.start, state.last_end, state.best, tuple(state.windows))
    cooling = state.closed_at is not None and t_start - state.closed_at < watch.cooldown_s
    if positive and not cooling:
        state.open, state.event, state.start, state.start_index = True, state.event + 1, t_start, index
        state.last_end, state.best, state.windows = t_end, score, [index]
        return Transition("open", state.event, t_start, None, score, (index,))
    return None


def p_yes(logprobs: list[float]) -> float:
    """P(yes) from the log-likelihoods of ``CHOICES`` (normalised over the two)."""
    yes, no = logprobs
    top = max(yes, no)
    return math.exp(yes - top) / (math.exp(yes - top) + math.exp(no - top))
