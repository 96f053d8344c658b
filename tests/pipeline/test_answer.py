"""The answer stage on a real Redis with the tiny model: batches, streams, limits, stop strings, errors."""

from __future__ import annotations

import numpy as np
import pytest

import heron
from heron.config import AnswerConfig
from heron.errors import EmptyVideoError, MediaCountMismatchError
from heron.models.sampling import SamplingConfig
from heron.pipeline.answer import AnswerRequest, AnswerStage, MediaRef
from heron.pipeline.batching import Batcher
from heron.types import MediaChunk

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model():
    return heron.load_model("tiny", trainable="none")


@pytest.fixture
def stage(model, latents, dialogue):
    rng = np.random.default_rng(0)
    dim, tokens = model.encoder.dim, model.encoder.num_latents
    for source in ("a", "b"):
        latents.put_chunks(
            [MediaChunk(source, i, 4.0 * i, 4.0 * i + 3, rng.standard_normal((tokens, dim))) for i in range(5)]
        )
    return AnswerStage(model, latents, dialogue, AnswerConfig(max_new_tokens=12, max_windows=3))


def test_a_batch_answers_each_row_as_alone(stage):
    alone = [stage.run([AnswerRequest.about("What moves?", s)])[0].text for s in ("a", "b")]
    together = stage.run([AnswerRequest.about("What moves?", "a"), AnswerRequest.about("What moves?", "b")])
    assert [answer.text for answer in together] == alone
    assert together[0].windows_used == 3 and together[0].spans == [(0.0, 3.0), (8.0, 11.0), (16.0, 19.0)]


def test_streamed_text_adds_up_to_the_answer_and_rows_keep_their_own_limits(stage):
    deltas: dict[int, list[str]] = {0: [], 1: []}
    short = AnswerRequest.about("Q?", "a", max_new_tokens=2)
    long = AnswerRequest.about("Q?", "b", max_new_tokens=12)
    answers = stage.run([short, long], on_text=lambda i, d: deltas[i].append(d))
    for i, answer in enumerate(answers):
        assert "".join(deltas[i]) == answer.text
    assert answers[0].completion_tokens <= 2 and answers[1].completion_tokens <= 12
    assert answers[0].finish_reason in ("length", "stop")


def test_a_stop_string_ends_the_answer_before_it(stage):
    free = stage.run([AnswerRequest.about("Q?", "a", max_new_tokens=12)])[0].text
    assert len(free) > 2, "the tiny model should say something"
    stop = free[1:3]
    cut = stage.run([AnswerRequest.about("Q?", "a", max_new_tokens=12, stop=(stop,))])[0]
    assert cut.text == free[: free.index(stop)].rstrip() and cut.finish_reason == "stop"


def test_a_request_that_cannot_be_answered_fails_alone(stage):
    good = AnswerRequest.about("Q?", "a")
    missing = AnswerRequest.about("Q?", "nothing-cached")
    mismatched = AnswerRequest(prompt="<image><image>two markers", media=[MediaRef("a")])
    results = stage.run([good, missing, mismatched])
    assert isinstance(results[1], EmptyVideoError) and isinstance(results[2], MediaCountMismatchError)
    assert results[0].text == stage.run([good])[0].text


def test_several_media_items_go_into_one_interleaved_prompt(stage):
    request = AnswerRequest(
        prompt="<image>this clip: a.<|endofchunk|><image>this clip:",
        media=[MediaRef("a", 0, 7.5), MediaRef("b", 8, 20)],
    )
    answer = stage.run([request])[0]
    assert answer.media_spans == [[(0.0, 3.0), (4.0, 7.0)], [(8.0, 11.0), (12.0, 15.0), (16.0, 19.0)]]
    assert answer.session_id is None and answer.prompt_tokens > 10


def test_native_questions_keep_their_dialogue(stage, dialogue):
    first = stage.run([AnswerRequest.about("What moves?", "a")])[0]
    stage.run([AnswerRequest.about("And then?", "a", session_id=first.session_id)])
    turns = dialogue.get_dialogue(first.session_id)
    assert [t.text for t in turns[::2]] == ["What moves?", "And then?"]


def test_seeded_sampling_is_repeatable_and_differs_from_greedy(stage):
    hot = SamplingConfig(do_sample=True, temperature=2.0, seed=7)
    a = stage.run([AnswerRequest.about("Q?", "a", sampling=hot)])[0].text
    b = stage.run([AnswerRequest.about("Q?", "a", sampling=hot)])[0].text
    assert a == b


def test_the_batcher_puts_concurrent_requests_in_one_batch(stage):
    import threading

    batcher = Batcher(stage.run, max_batch=8, window_s=0.2)
    try:
        tickets = []
        threads = [
            threading.Thread(target=lambda: tickets.append(batcher.submit(AnswerRequest.about("Q?", "a"))))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        answers = [t.result(timeout_s=60) for t in tickets]
        assert len({a.text for a in answers}) == 1 and batcher.batches == 1 and batcher.batched_requests == 4
    finally:
        batcher.close()
