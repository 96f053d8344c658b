"""The Flamingo loss: next-token cross-entropy on the interleaved sequence.

    -log p(y | x) = -Σ_l log p(y_l | y_<l, x_≤l)

The conditioning on "only the media before token l" (x_≤l; with ``immediate`` attention only the
last one) is the model's own masking in its forward pass: the loss just scores next tokens. Which
tokens are scored is in the labels (heron.train.dataset: answers only by default); positions
labelled IGNORE_INDEX (prompt, <image>, padding, spliced media tokens) carry no loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from heron.train.dataset import IGNORE_INDEX


def flamingo_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy and the number of scored tokens.

    logits [B, L, V] and labels [B, L] aligned (``model(...).logits`` and ``.labels``): the
    logits at position l predict the label at l + 1. Returns (sum over scored tokens, count), so
    callers can average over a whole accumulated batch rather than per micro-batch.
    """
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} are not aligned")
    predicted = logits[:, :-1].float()  # [B, L-1, V]; fp32 for a stable log-softmax under autocast
    target = labels[:, 1:].to(logits.device)  # [B, L-1]
    total = F.cross_entropy(
        predicted.reshape(-1, predicted.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total, int((target != IGNORE_INDEX).sum())
