"""Per-request media for the cross-attention layers, visible only inside a ``with`` block.

The decoder layers of a Hugging Face LM are called by the LM's own forward loop, so the media
cannot be passed to them as arguments for every architecture. Instead each request's media sits
in a ``contextvars.ContextVar`` owned by the model: set on entering ``MediaState.use(...)`` and
always reset on leaving it, even on error. Context variables are per thread and per asyncio task,
so two concurrent requests never see each other's media.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from heron.models.xattn import MaskedCrossAttention, text_to_media_mask


@dataclass
class MediaRequest:
    """One request's visual tokens and where its text stands relative to them.

    media: [U, M, N, d_visual], zero-padded; media_mask: bool [U, M, N], False on padding
    (absent items, or items with fewer than N tokens), which is never visible.
    rows: long [B] or None: the media each of the B prompt rows reads (rows that share media share
    one entry, so its keys/values are computed once: the watches of one window). None: U = B.
    text_time: long [B, L] for the tokens of the current forward call (set before each call).
    """

    media: torch.Tensor
    media_mask: torch.Tensor
    mode: str  # "immediate" | "all_previous"
    rows: torch.Tensor | None = None
    text_time: torch.Tensor | None = None
    _keys_values: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    _mask: torch.Tensor | None = None

    def set_text_time(self, text_time: torch.Tensor) -> None:
        self.text_time, self._mask = text_time, None

    def mask(self) -> torch.Tensor:
        """bool [B, 1, L, M*N], computed once per forward call and shared by all layers."""
        if self._mask is None:
            _, num_media, num_tokens, _ = self.media.shape
            allowed = text_to_media_mask(self.text_time, num_media, num_tokens, self.mode)
            visible = self.media_mask if self.rows is None else self.media_mask[self.rows]  # [B, M, N]
            self._mask = allowed & visible.flatten(1)[:, None, None, :]
        return self._mask

    def keys_values(self, layer: int, attention: MaskedCrossAttention) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s media keys/values: computed on first use, reused at every decoding step."""
        if layer not in self._keys_values:
            keys, values = attention.media_keys_values(self.media)  # [U, h, M*N, dh] each
            if self.rows is not None:
                keys, values = keys[self.rows], values[self.rows]  # [B, h, M*N, dh]: shared, not recomputed
            self._keys_values[layer] = (keys, values)
        return self._keys_values[layer]


class MediaState:
    """The slot through which cross-attention layers find the current request's media."""

    def __init__(self) -> None:
        self._current: contextvars.ContextVar[MediaRequest | None] = contextvars.ContextVar(
            f"heron_media_{id(self)}", default=None
        )

    @contextmanager
    def use(self, request: MediaRequest) -> Iterator[MediaRequest]:
        token = self._current.set(request)
        try:
            yield request
        finally:
            self._current.reset(token)

    def current(self) -> MediaRequest | None:
        return self._current.get()

    def __reduce__(self):
        # A copied or unpickled model (deepcopy, Ray) gets a fresh, empty slot of its own.
        return (MediaState, ())
