"""GATED XATTN-DENSE (Flamingo §2.2): text queries attend to visual tokens, tanh-gated.

Gates start at 0, so at initialisation the block is the identity and the frozen LM is exactly
intact. Module and parameter names follow OpenFlamingo so its checkpoints map one to one.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from heron.encoders.resampler import feed_forward


def text_to_media_mask(text_time: torch.Tensor, num_media: int, num_latents: int, mode: str) -> torch.Tensor:
    """Which visual tokens each text token may see.

    text_time [B, L]: how many <image> markers occur at or before each token (0 = none yet).
    Returns bool [B, 1, L, M*R]. ``immediate``: only media number text_time (the one right before);
    ``all_previous``: media 1..text_time. Padding media (beyond a row's count) is never visible.
    """
    media_time = torch.arange(1, num_media + 1, device=text_time.device).repeat_interleave(num_latents)  # [M*R]
    text = text_time[:, None, :, None]  # [B, 1, L, 1]
    return text == media_time if mode == "immediate" else text >= media_time


class MaskedCrossAttention(nn.Module):
    """Queries from text [B, L, D]; keys/values from visual tokens [B, M, R, d_visual]."""

    def __init__(self, *, dim: int, dim_visual: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.scale = heads, head_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_visual, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def media_keys_values(self, media: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """media [B, M, R, d_visual] → keys, values [B, h, M*R, dh]. Computed once per request."""
        k, v = self.to_kv(rearrange(media, "b m r d -> b (m r) d")).chunk(2, dim=-1)
        return tuple(rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (k, v))

    def forward(
        self, x: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        """x [B, L, D], keys/values [B, h, N, dh], mask bool [B, 1, L, N] → [B, L, D]."""
        keys, values = keys_values
        q = rearrange(self.to_q(self.norm(x)), "b l (h d) -> b h l d", h=self.heads) * self.scale
        sim = (q @ keys.transpose(-1, -2)).masked_fill(~mask, -torch.finfo(q.dtype).max)  # [B, h, L, N]
        attn = sim.softmax(dim=-1)
        # A token with no visible media gets zero output, not a uniform average over padding.
        attn = attn.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
        return self.to_out(rearrange(attn @ values, "b h l d -> b l (h d)"))


class GatedCrossAttentionBlock(nn.Module):
    """x + tanh(attn_gate) * xattn(x, media);  x + tanh(ff_gate) * ffw(x)."""

    def __init__(self, *, dim: int, dim_visual: int, heads: int, head_dim: int, ffw_mult: int):
        super().__init__()
        self.attn = MaskedCrossAttention(dim=dim, dim_visual=dim_visual, heads=heads, head_dim=head_dim)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = feed_forward(dim, ffw_mult)
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(
        self, x: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor] | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x [B, L, D] → [B, L, D]. With no media (keys_values None) only the gated FFW applies."""
        if keys_values is not None:
            x = x + self.attn(x, keys_values, mask) * self.attn_gate.tanh()
        return x + self.ff(x) * self.ff_gate.tanh()
