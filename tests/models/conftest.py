"""Tiny model configs for every supported LM family (random init, built in milliseconds)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from heron.config import CrossAttentionConfig, LMConfig, ModelConfig, ResamplerConfig, VisionConfig

VOCAB = 257  # the byte-level tokenizer's 256 bytes + EOS; Heron adds 3 tokens
LM_FAMILIES = {
    "gpt2": dict(n_layer=4, n_embd=32, n_head=2, n_positions=128, vocab_size=VOCAB, bos_token_id=256, eos_token_id=256),
    "llama": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        vocab_size=VOCAB,
    ),
    "qwen2": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        vocab_size=VOCAB,
    ),
    "mistral": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        vocab_size=VOCAB,
    ),
    "gpt_neox": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=128,
        vocab_size=VOCAB,
    ),
    "opt": dict(
        hidden_size=32,
        ffn_dim=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        word_embed_proj_dim=32,
        max_position_embeddings=128,
        vocab_size=VOCAB,
    ),
}


def tiny_config(arch: str = "gpt2", **overrides) -> ModelConfig:
    cfg = ModelConfig(
        name=f"test-{arch}",
        vision=VisionConfig(
            kind="clip",
            init=dict(
                hidden_size=24,
                intermediate_size=48,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=16,
                patch_size=8,
            ),
        ),
        lm=LMConfig(architecture=arch, init=copy.deepcopy(LM_FAMILIES[arch])),
        resampler=ResamplerConfig(depth=2, heads=2, head_dim=8, num_latents=3, ffw_mult=2, max_frames=4),
        xattn=CrossAttentionConfig(every_n_layers=2, heads=2, head_dim=8, ffw_mult=2),
        device="cpu",
        dtype="float32",
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def open_gates(model, value: float = 1.0) -> None:
    """Give every gated block a non-zero gate so media actually changes the logits."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("attn_gate", "ff_gate")):
                param.fill_(value)


def random_frames(rng: np.random.Generator, frames: int = 2, height: int = 16, width: int = 16) -> np.ndarray:
    return rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
