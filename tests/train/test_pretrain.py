"""Tiny backbones from scratch: tokenizer, contrastive vision tower and LM, loaded by heron.load_model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import heron
from heron.config import CrossAttentionConfig, DecodeConfig, LMConfig, ModelConfig, ResamplerConfig, VisionConfig
from heron.train.config import LMPretrainConfig, VisionPretrainConfig
from heron.train.pretrain import _clip_loss, frame_caption_pairs, pretrain_lm, pretrain_vision, train_tokenizer
from heron.train.recipe import text_corpus

from .conftest import DECODE


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_tiny_backbones_train_save_and_load_through_from_pretrained(tmp_path, tiny_data):
    clips = tiny_data["train_manifest"].parent / "clips.jsonl"
    texts, extra = text_corpus(tiny_data["train_manifest"], grid=5)
    assert any(t.startswith("<image>Question:") for t in texts) and any(t.endswith(".") for t in texts)
    assert any(t.startswith("<image>a ") and "Question:" in t for t in texts)  # caption, then its questions
    tokenizer = train_tokenizer(texts + extra, tmp_path / "tok")
    # Every word of the benchmark is in the vocabulary; case does not matter; markers are single tokens.
    encoded = tokenizer("<image>QUESTION: What color is the square? Answer: red<|endofchunk|>")["input_ids"]
    assert tokenizer.unk_token_id not in encoded and encoded[0] == tokenizer.convert_tokens_to_ids("<image>")
    assert tokenizer.decode(encoded[-2:], skip_special_tokens=True) == "red"
    assert len(tokenizer) < 100

    lm_cfg = LMPretrainConfig(
        out=str(tmp_path / "lm"),
        init={"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 128},
        steps=3,
        batch_size=4,
    )
    pretrain_lm(lm_cfg, tokenizer, texts, progress=False)
    frames, captions = frame_caption_pairs(clips, DecodeConfig(**DECODE), limit=3, progress=False)
    assert len(frames) == len(captions) == 24 and frames.shape[1:] == (32, 32, 3)
    vision_cfg = VisionPretrainConfig(
        out=str(tmp_path / "vision"),
        steps=3,
        batch_size=8,
        projection_dim=8,
        init={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        text_init={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
        },
    )
    pretrain_vision(vision_cfg, tokenizer, frames, captions, progress=False)
    assert json.loads((tmp_path / "vision" / "pretrain.json").read_text())["steps"] == 3

    cfg = ModelConfig(
        vision=VisionConfig(name_or_path=str(tmp_path / "vision")),
        lm=LMConfig(name_or_path=str(tmp_path / "lm")),
        resampler=ResamplerConfig(depth=1, heads=2, head_dim=8, num_latents=2, max_frames=8),
        xattn=CrossAttentionConfig(heads=2, head_dim=8),
        device="cpu",
        dtype="float32",
    )
    model = heron.load_model(cfg, trainable="none")
    assert len(model.tokenizer) == len(tokenizer)  # Heron's markers were already in the vocabulary
    answer = model.generate("<image>Question: What color is the square? Answer:", [frames[:8]], max_new_tokens=3)
    assert isinstance(answer, str)


def test_contrastive_loss_treats_identical_captions_as_positives():
    image = torch.eye(3)
    text = torch.eye(3)
    same = torch.eye(3, dtype=torch.bool)
    assert _clip_loss(image, text, torch.tensor(np.log(100.0)), same) < 1e-3
    same_all = torch.ones(3, 3, dtype=torch.bool)  # three copies of one caption: nothing to tell apart
    assert _clip_loss(image, text, torch.tensor(np.log(100.0)), same_all) > 1.0
