"""Watches as a pure state machine: events from scored windows, cooldown, few-shot prompts."""

from __future__ import annotations

import math

import pytest

from heron.errors import ConfigError
from heron.pipeline.answer import MediaRef
from heron.pipeline.watch import Example, Watch, WatchState, p_yes, step


def _run(watch, scores, window_s=2.0):
    state, changes = WatchState(), []
    for i, score in enumerate(scores):
        change = step(watch, state, index=i, t_start=i * window_s, t_end=i * window_s + 1.9, score=score)
        if change is not None:
            changes.append(change)
    return state, changes


def test_consecutive_positive_windows_are_one_event_opened_then_closed():
    state, changes = _run(Watch("w", "Is it there?", cooldown_s=0), [0.1, 0.9, 0.8, 0.95, 0.2, 0.1])
    assert [(c.kind, c.event, c.start, c.end) for c in changes] == [("open", 1, 2.0, None), ("close", 1, 2.0, 7.9)]
    assert changes[1].windows == (1, 2, 3) and changes[1].score == 0.95 and not state.open


def test_cooldown_keeps_a_flicker_from_opening_a_second_event():
    watch = Watch("w", "Is it there?", cooldown_s=5.0)
    _, changes = _run(watch, [0.9, 0.1, 0.9, 0.1, 0.1, 0.9])  # windows start at 0, 2, 4, 6, 8, 10 s
    assert [(c.kind, c.event) for c in changes] == [("open", 1), ("close", 1), ("open", 2)]
    assert changes[-1].start == 10.0  # 2 s after the close is inside the cooldown; 8 s after is not


def test_threshold_and_every_are_checked():
    for bad in (dict(threshold=0), dict(threshold=1), dict(every=0), dict(cooldown_s=-1)):
        with pytest.raises(ConfigError):
            Watch("w", "Is it there?", **bad)
    with pytest.raises(ConfigError):
        Watch("w", "Is it there?", examples=(Example("maybe", MediaRef("a")),))


def test_a_few_shot_watch_puts_its_examples_first():
    watch = Watch("w", "Is a dog there?", examples=(Example("yes", MediaRef("a", 0, 2)), Example("no", MediaRef("b"))))
    prompt, media = watch.prompt()
    assert prompt == (
        "<image>Question: Is a dog there? Answer: yes<|endofchunk|>"
        "<image>Question: Is a dog there? Answer: no<|endofchunk|><image>Question: Is a dog there? Answer:"
    )
    assert media == [MediaRef("a", 0, 2), MediaRef("b")]
    again = Watch.from_dict(watch.to_dict(include_secret=True))
    assert again == watch and math.isinf(again.examples[1].media.end)


def test_the_webhook_secret_is_stored_but_never_shown():
    watch = Watch("w", "Is it there?", webhook="https://example.com/hook", webhook_secret="s3cret")
    assert "webhook_secret" not in watch.to_dict() and watch.to_dict()["webhook_signed"]
    assert Watch.from_dict(watch.to_dict(include_secret=True)).webhook_secret == "s3cret"


def test_p_yes_normalises_the_two_likelihoods():
    assert p_yes([math.log(0.3), math.log(0.1)]) == pytest.approx(0.75)
    assert p_yes([-1000.0, 0.0]) == pytest.approx(0.0) and p_yes([0.0, -1000.0]) == pytest.approx(1.0)
