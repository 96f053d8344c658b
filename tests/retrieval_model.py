"""A tiny retrieval CLIP (both towers, random init) saved to a folder, as a real checkpoint is."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, CLIPConfig, CLIPModel

from heron.config import load_config
from heron.models.tokenizer import load_tokenizer


def tiny_retrieval_dir(folder: str | Path) -> Path:
    """Save a random CLIP with the tiny preset's byte-level tokenizer; returns the folder."""
    folder = Path(folder)
    tokenizer = load_tokenizer(load_config("tiny").lm)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    text = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.eos_token_id,
    }
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)  # loads back
    return folder
