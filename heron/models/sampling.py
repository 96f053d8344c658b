"""Choosing the next token: greedy, or sampling with temperature / top-k / top-p."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    do_sample: bool = False  # False = greedy (argmax)
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filter
    top_p: float = 1.0  # nucleus sampling; 1.0 = off
    seed: int | None = None  # seeds this request's sampler (not the global RNG)


def next_tokens(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """logits [B, V] → token ids [B]."""
    if not cfg.do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / max(cfg.temperature, 1e-5)
    if cfg.top_k > 0:
        kth = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_logits.softmax(dim=-1) > cfg.top_p  # keep the token that crosses top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, -float("inf")))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def next_tokens_per_row(
    logits: torch.Tensor, configs: list[SamplingConfig], generators: list[torch.Generator | None]
) -> torch.Tensor:
    """logits [B, V] → token ids [B], each row with its own sampling config and generator.

    One call for the whole batch when every row is greedy (the common case)."""
    if all(not c.do_sample for c in configs):
        return logits.argmax(dim=-1)
    return torch.cat([next_tokens(logits[i : i + 1], c, g) for i, (c, g) in enumerate(zip(configs, generators))])
