"""Tokenizers: the LM's own (from a hub id or dir), or a byte-level one for random-init LMs.

Heron's two markers are added exactly as OpenFlamingo adds them: ``<|endofchunk|>`` and
``<image>`` as additional special tokens, then ``<PAD>`` when the tokenizer has no pad token.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from heron.config import LMConfig
from heron.tokens import END_OF_CHUNK_TOKEN, EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN

__all__ = [
    "END_OF_CHUNK_TOKEN",
    "EOS_TOKEN",
    "IMAGE_TOKEN",
    "PAD_TOKEN",
    "add_media_tokens",
    "byte_level_tokenizer",
    "load_tokenizer",
]


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A deterministic 256-symbol byte-level tokenizer (no merges): any text, no download."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    vocab[EOS_TOKEN] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN)


def load_tokenizer(cfg: LMConfig) -> PreTrainedTokenizerBase:
    source = cfg.tokenizer or cfg.name_or_path
    if source is None:
        return byte_level_tokenizer()
    return AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)


def add_media_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    """Add <|endofchunk|>, <image> (and <PAD> if missing) in OpenFlamingo's order; idempotent."""
    missing = [t for t in (END_OF_CHUNK_TOKEN, IMAGE_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.padding_side = "left"  # generation appends on the right
