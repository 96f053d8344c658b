"""Moment questions ("... at the end of the video?") read the window holding that moment."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import heron
from heron.config import AnswerConfig, load_config
from heron.errors import ConfigError
from heron.pipeline.answer import AnswerRequest, AnswerStage
from heron.pipeline.moments import moment_of, moment_window
from heron.types import MediaChunk


def test_the_moment_a_question_names_is_found_in_its_usual_wordings():
    assert moment_of("Is there a red square at the end of the video?") == "end"
    assert moment_of("Is there a red square at the start of the video?") == "start"
    assert moment_of("What is IN THE BEGINNING OF THE CLIP?") == "start"
    assert moment_of("Is a person at the door at the end of the stream?") == "end"
    for question in ("Is there a red square in the video?", "When does it end?", "At the end, what?", "", None):
        assert moment_of(question) is None
    assert moment_window("start", 7) == [0] and moment_window("end", 7) == [6]


@pytest.fixture(scope="module")
def model():
    return heron.load_model(load_config("tiny"), trainable="none")


@pytest.mark.integration
def test_a_moment_question_is_answered_from_that_window_alone(model, latents, dialogue):
    rng = np.random.default_rng(0)
    dim, tokens = model.encoder.dim, model.encoder.num_latents
    latents.put_chunks(
        [MediaChunk("m", i, 2.0 * i, 2.0 * i + 1.9, rng.standard_normal((tokens, dim))) for i in range(5)]
    )
    cfg = AnswerConfig(max_new_tokens=2)
    stage = AnswerStage(model, latents, dialogue, cfg)
    [end] = stage.run([AnswerRequest.about("Is there a red square at the end of the video?", "m")])
    assert end.spans == [(8.0, 9.9)] and end.evidence == [(8.0, 9.9)]
    [start] = stage.run([AnswerRequest.about("Is there a red square at the start of the video?", "m", start=2.0)])
    assert start.spans == [(2.0, 3.9)]  # the start of the range asked about
    [whole] = stage.run([AnswerRequest.about("Is there a red square in the video?", "m")])
    assert len(whole.spans) == 5
    off = AnswerStage(model, latents, dialogue, dataclasses.replace(cfg, moments=False))
    assert len(off.run([AnswerRequest.about("Is there a red square at the end of the video?", "m")])[0].spans) == 5
    with pytest.raises(ConfigError, match="answer.moments"):
        AnswerConfig(moments="yes")
