"""Inference that does not depend on the mode the caller left a module in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode (dropout off) inside the block; every submodule's own mode restored after.

    A model left in training mode by its caller would otherwise answer at random (GPT-2 and OPT
    ship with dropout 0.1)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
