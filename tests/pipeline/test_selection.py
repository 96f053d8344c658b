"""Question-aware window selection: the pure choice, then the answer stage on a real Redis."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import heron
from heron.config import AnswerConfig, load_config
from heron.errors import ConfigError
from heron.pipeline.answer import AnswerRequest, AnswerStage
from heron.pipeline.prompts import evenly_spaced
from heron.pipeline.selection import evidence, select_windows
from heron.pipeline.when import is_when_question, resolve_when, when_text
from heron.types import MediaChunk
from tests.retrieval_model import tiny_retrieval_dir


def test_without_scores_or_in_evenly_mode_the_choice_is_evenly_spaced():
    scores = np.zeros(100)
    scores[57] = 1.0
    assert select_windows(None, 100, 8, "similar") == evenly_spaced(100, 8)
    assert select_windows(scores, 100, 8, "evenly") == evenly_spaced(100, 8)
    assert select_windows(scores, 5, 8, "similar") == [0, 1, 2, 3, 4]  # room for all: all, in order


def test_similar_takes_the_best_hits_with_their_neighbours_in_time_order():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 0.1, 200)
    scores[[40, 150]] = [0.9, 0.8]
    chosen = select_windows(scores, 200, 6, "similar")
    assert chosen == sorted(chosen) and len(chosen) == 6
    assert {39, 40, 41, 149, 150, 151} == set(chosen)
    assert evidence(scores, chosen, 2) == [40, 150]


def test_every_distinct_moment_that_stands_out_is_chosen_before_any_neighbour():
    # an hour of 2-s windows, five events that each straddle two windows (both halves similar):
    # eight similar slots, so two halves of each event would leave one event out of a count
    rng = np.random.default_rng(5)
    scores = rng.uniform(0.0, 0.1, 1800)
    events = [(130, 131), (402, 403), (990, 991), (1400, 1401), (1702, 1703)]
    for k, (a, b) in enumerate(events):
        scores[a], scores[b] = 0.9 - 0.05 * k, 0.85 - 0.05 * k
    chosen = select_windows(scores, 1800, 16, "hybrid")
    assert len(chosen) == 16 and set(evenly_spaced(1800, 8)) <= set(chosen)
    assert all(a in chosen or b in chosen for a, b in events)
    assert {129, 131} <= set(chosen)  # what is left goes to the best moment's neighbours first


def test_hybrid_is_half_evenly_spread_and_half_the_most_similar():
    scores = np.zeros(300)
    scores[123] = 1.0
    chosen = select_windows(scores, 300, 8, "hybrid")
    assert len(chosen) == 8 and set(evenly_spaced(300, 4)) <= set(chosen) and 123 in chosen
    assert evidence(None, chosen, 3) == chosen  # nothing singles a window out without scores


def test_when_answers_name_a_window_of_the_prompt_and_read_as_its_time():
    spans = [(0.0, 2.0), (10.0, 12.0), (50.0, 52.0)]
    assert is_when_question("When does the red square appear?") and not is_when_question("Whence?")
    assert resolve_when("Third.", spans) == (50.0, 52.0) and resolve_when("fifth", spans) is None
    assert resolve_when("red", spans) is None and when_text((50.0, 52.0)) == "at 50.0–52.0 s"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = load_config("tiny")
    cfg.retrieval.name_or_path = str(tiny_retrieval_dir(tmp_path_factory.mktemp("retrieval")))
    return heron.load_model(cfg, trainable="none")


def cache_one_matching_window(model, latents, source: str, question: str, n: int, hit: int, seed: int) -> None:
    """Cache ``n`` 2-s windows of random latents whose embeddings are all orthogonal to the
    question's (similarity 0) but window ``hit``'s, which is the question's own."""
    target = model.encoder.retrieval.embed_texts([question])[0].numpy()  # [p], unit length
    rng = np.random.default_rng(seed)
    dim, tokens = model.encoder.dim, model.encoder.num_latents
    chunks = []
    for i in range(n):
        other = rng.standard_normal(target.shape)
        other -= (other @ target) * target
        embedding = target if i == hit else other / np.linalg.norm(other)
        chunks.append(MediaChunk(source, i, 2.0 * i, 2.0 * i + 2, rng.standard_normal((tokens, dim)), embedding))
    latents.put_chunks(chunks)


@pytest.mark.integration
def test_the_answer_stage_reads_the_window_the_question_is_about_and_cites_it(model, latents, dialogue):
    question = "Is there a red square in the video?"
    cache_one_matching_window(model, latents, "long", question, n=40, hit=27, seed=1)
    cfg = AnswerConfig(max_new_tokens=4, max_windows=6, selection="similar", evidence_windows=2)
    similar = AnswerStage(model, latents, dialogue, cfg).run([AnswerRequest.about(question, "long")])[0]
    assert {(52.0, 54.0), (54.0, 56.0), (56.0, 58.0)} <= set(similar.spans)  # window 27 and its neighbours
    assert similar.evidence[0] == (54.0, 56.0) and len(similar.evidence) == 2
    evenly = AnswerStage(model, latents, dialogue, dataclasses.replace(cfg, selection="evenly"))
    spread = evenly.run([AnswerRequest.about(question, "long")])[0]
    assert spread.spans == [(2.0 * i, 2.0 * i + 2) for i in evenly_spaced(40, 6)] and (54.0, 56.0) not in spread.spans
    assert len(spread.evidence) == 2 and set(spread.evidence) <= set(spread.spans)  # the most similar of those used


@pytest.mark.integration
def test_when_by_retrieval_answers_with_the_window_most_similar_to_the_question(model, latents, dialogue):
    question = "When does the red square appear?"
    cache_one_matching_window(model, latents, "moment", question, n=50, hit=31, seed=4)
    cfg = AnswerConfig(max_new_tokens=4, max_windows=6, when="retrieval")
    [answer] = AnswerStage(model, latents, dialogue, cfg).run([AnswerRequest.about(question, "moment")])
    assert answer.when == (62.0, 64.0) and answer.text == "at 62.0–64.0 s" and answer.evidence == [(62.0, 64.0)]
    by_model = AnswerStage(model, latents, dialogue, dataclasses.replace(cfg, when="model"))
    assert by_model.run([AnswerRequest.about(question, "moment")])[0].when is None  # the random LM names none
    with pytest.raises(ConfigError, match="answer.when"):
        AnswerConfig(when="lm")


@pytest.mark.integration
def test_windows_cached_without_embeddings_fall_back_to_evenly(model, latents, dialogue):
    rng = np.random.default_rng(2)
    dim, tokens = model.encoder.dim, model.encoder.num_latents
    latents.put_chunks([MediaChunk("old", i, float(i), i + 1.0, rng.standard_normal((tokens, dim))) for i in range(30)])
    stage = AnswerStage(model, latents, dialogue, AnswerConfig(max_new_tokens=2, max_windows=5, selection="similar"))
    answer = stage.run([AnswerRequest.about("What moves?", "old")])[0]
    assert answer.spans == [(float(i), i + 1.0) for i in evenly_spaced(30, 5)]


@pytest.mark.integration
def test_a_when_answer_is_streamed_whole_once_it_is_final(model, latents, dialogue):
    rng = np.random.default_rng(3)
    dim, tokens = model.encoder.dim, model.encoder.num_latents
    latents.put_chunks([MediaChunk("w", i, float(i), i + 1.0, rng.standard_normal((tokens, dim))) for i in range(3)])
    stage = AnswerStage(model, latents, dialogue, AnswerConfig(max_new_tokens=6))
    deltas: list[str] = []
    [answer] = stage.run([AnswerRequest.about("When does it start?", "w")], on_text=lambda i, d: deltas.append(d))
    assert len(deltas) <= 1 and "".join(deltas) == answer.text  # (the random model names no window: as said)
    assert answer.when is None


def test_retrieval_training_texts_are_true_of_the_frame_they_come_from():
    from heron.data.synthetic import ClipConfig, sample_clip
    from heron.train.pretrain import retrieval_texts

    rng = np.random.default_rng(0)
    for _ in range(50):
        meta = sample_clip(rng, ClipConfig())
        frame = int(rng.integers(meta.config.num_frames))
        text, test = retrieval_texts(meta, frame, rng)
        pairs = {(o.color, o.shape) for o in meta.objects if o.visible(frame)}
        assert test(pairs) and (text == "nothing") == (not pairs)
        assert not test(set()) or text == "nothing"


def test_a_live_streams_newest_windows_are_always_chosen():
    scores = np.zeros(50)
    scores[10] = 1.0
    for mode in ("evenly", "similar", "hybrid"):
        chosen = select_windows(scores, 50, 8, mode, newest=2)
        assert {48, 49} <= set(chosen) and len(chosen) == 8 and chosen == sorted(chosen)
    assert select_windows(None, 50, 8, "hybrid", newest=2) == sorted({48, 49} | set(evenly_spaced(48, 6)))
    assert 10 in select_windows(scores, 50, 8, "similar", newest=2)
