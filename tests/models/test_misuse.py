"""Caller mistakes raise typed errors that name the numbers."""

import numpy as np
import pytest
import torch

from heron.errors import FrameFormatError, MediaCountMismatchError, PromptTooLongError
from heron.models import build_model

from .conftest import random_frames, tiny_config


@pytest.fixture(scope="module")
def model():
    return build_model(tiny_config("gpt2")).eval()


def test_marker_count_must_match_media(model, rng):
    with pytest.raises(MediaCountMismatchError, match="has 2 <image> marker.* but 1 media item"):
        model.generate("<image> and <image>", [random_frames(rng)])
    with pytest.raises(MediaCountMismatchError, match="prompt 1 has 0 <image>"):
        model.generate(["<image> x", "no marker"], [[random_frames(rng)], [random_frames(rng)]])


def test_frames_must_be_uint8_rgb(model, rng):
    with pytest.raises(FrameFormatError, match="uint8"):
        model.encode(np.zeros((2, 16, 16, 3), dtype=np.float32))
    with pytest.raises(FrameFormatError, match="3 colour channels"):
        model.encode(np.zeros((2, 16, 16, 4), dtype=np.uint8))
    with pytest.raises(FrameFormatError, match=r"latents \[3, 24\]"):
        model.generate("<image>", [torch.zeros(5, 7)])
    with pytest.raises(FrameFormatError, match="pts must have shape"):
        model.encode(random_frames(rng, frames=4), pts=np.arange(3.0))
    with pytest.raises(FrameFormatError, match="non-decreasing"):
        model.encode(random_frames(rng, frames=3), pts=np.array([0.0, 2.0, 1.0]))


def test_prompt_longer_than_context(model):
    with pytest.raises(PromptTooLongError, match=r"prompt is 100 tokens \+ 40 new tokens, more than .* 128"):
        model.generate("x" * 100, max_new_tokens=40)
