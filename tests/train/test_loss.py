"""The Flamingo loss: labels only where intended, next-token CE, each token conditioned on its media."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import heron
from heron.models.tokenizer import END_OF_CHUNK_TOKEN
from heron.train.dataset import IGNORE_INDEX, answer_spans, tokenize_sample
from heron.train.loss import flamingo_loss

from .conftest import tiny_model_config

TEXT = (
    "<image>Question: What color is the square? Answer: red<|endofchunk|>"
    "Question: How many objects appear in the video? Answer: two<|endofchunk|>"
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = heron.load_model(tiny_model_config())
    with torch.no_grad():  # open the gates so media change the logits
        for name, p in m.named_parameters():
            if name.endswith(("attn_gate", "ff_gate")):
                p.fill_(1.0)
    return m.eval()  # no dropout: the comparisons below are exact


def _decoded_labels(tokenizer, labels: list[int]) -> list[str]:
    """The labelled stretches, decoded, one string per contiguous run."""
    runs, current = [], []
    for label in labels + [IGNORE_INDEX]:
        if label == IGNORE_INDEX:
            if current:
                runs.append(tokenizer.decode(current))
            current = []
        else:
            current.append(label)
    return runs


def test_answer_labels_cover_exactly_the_answers_and_their_end_of_chunk(model):
    ids, labels = tokenize_sample(model.tokenizer, TEXT, labels="answers", image_token_id=model.image_token_id)
    assert len(ids) == len(labels)
    assert _decoded_labels(model.tokenizer, labels) == [f" red{END_OF_CHUNK_TOKEN}", f" two{END_OF_CHUNK_TOKEN}"]
    assert [TEXT[a:b] for a, b in answer_spans(TEXT)] == [f" red{END_OF_CHUNK_TOKEN}", f" two{END_OF_CHUNK_TOKEN}"]
    # Every labelled token is its own id; everything else (question, "Answer:", <image>) is ignored.
    assert all(lab in (IGNORE_INDEX, tok) for tok, lab in zip(ids, labels))
    assert labels[0] == IGNORE_INDEX and ids[0] == model.image_token_id


def test_text_labels_cover_everything_but_media_markers(model):
    ids, labels = tokenize_sample(model.tokenizer, TEXT, labels="text", image_token_id=model.image_token_id)
    assert [lab == IGNORE_INDEX for lab in labels] == [tok == model.image_token_id for tok in ids]


def test_loss_is_cross_entropy_over_labelled_tokens_only(model):
    rng = np.random.default_rng(0)
    ids, labels = tokenize_sample(model.tokenizer, TEXT, labels="answers", image_token_id=model.image_token_id)
    input_ids, labels = torch.tensor([ids]), torch.tensor([labels])
    media = model.encode(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))[None, None]  # [1, 1, R, d]
    out = model(input_ids, torch.ones_like(input_ids), media, labels=labels)
    total, count = flamingo_loss(out.logits, out.labels)
    scored = (labels[0, 1:] != IGNORE_INDEX).nonzero().flatten()
    assert count == len(scored) == 10  # " red<eoc>" and " two<eoc>": 4 bytes + 1 marker each
    expected = sum(F.cross_entropy(out.logits[0, p], labels[0, p + 1]) for p in scored.tolist())
    torch.testing.assert_close(total, expected)
    # Logits at unscored positions do not matter at all.
    noisy = out.logits.clone()
    unscored = torch.ones(noisy.shape[1], dtype=torch.bool)
    unscored[scored] = False
    noisy[0, unscored] = torch.randn_like(noisy[0, unscored]) * 100
    torch.testing.assert_close(flamingo_loss(noisy, out.labels)[0], total)


def test_tokens_are_conditioned_only_on_media_before_them(model):
    """p(y_l | y_<l, x_<=l): in a two-clip (few-shot) sequence the first answer's loss does not
    depend on the second clip at all, and the second answer's loss does depend on it."""
    rng = np.random.default_rng(1)
    text = (
        "<image>Question: What color is the square? Answer: red<|endofchunk|>"
        "<image>Question: What color is the circle? Answer: blue<|endofchunk|>"
    )
    ids, labels = tokenize_sample(model.tokenizer, text, labels="answers", image_token_id=model.image_token_id)
    input_ids, labels = torch.tensor([ids]), torch.tensor([labels])
    second_start = ids.index(model.image_token_id, 1)

    def per_token(first_frames, second_frames):
        media = torch.stack([model.encode(first_frames), model.encode(second_frames)])[None]  # [1, 2, R, d]
        out = model(input_ids, torch.ones_like(input_ids), media, labels=labels)
        return F.cross_entropy(out.logits[0, :-1], out.labels[0, 1:], ignore_index=IGNORE_INDEX, reduction="none")

    clips = [rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8) for _ in range(3)]
    base = per_token(clips[0], clips[1])
    other_first = per_token(clips[2], clips[1])
    other_second = per_token(clips[0], clips[2])
    torch.testing.assert_close(other_second[:second_start], base[:second_start], rtol=0, atol=0)
    assert not torch.allclose(other_second[second_start:], base[second_start:])  # its own clip matters
    assert not torch.allclose(other_first[:second_start], base[:second_start])


def test_linear_prefix_labels_stay_aligned_with_spliced_media():
    rng = np.random.default_rng(2)
    cfg = tiny_model_config()
    cfg.connector = "linear_prefix"
    model = heron.load_model(cfg).eval()
    ids, labels = tokenize_sample(model.tokenizer, TEXT, labels="answers", image_token_id=model.image_token_id)
    input_ids, labels = torch.tensor([ids]), torch.tensor([labels])
    media = model.encode(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))[None, None]
    out = model(input_ids, torch.ones_like(input_ids), media, labels=labels)
    assert out.labels.shape == out.logits.shape[:2] == (1, len(ids) - 1 + model.encoder.num_latents)
    kept = out.labels[out.labels != IGNORE_INDEX].tolist()
    assert kept == labels[labels != IGNORE_INDEX].tolist()
    assert flamingo_loss(out.logits, out.labels)[1] == 10


def test_misaligned_logits_are_refused():
    with pytest.raises(ValueError, match="aligned"):
        flamingo_loss(torch.zeros(1, 5, 7), torch.zeros(1, 4, dtype=torch.long))
