"""The Perceiver Resampler: a variable [T, S, d] grid of visual features → R fixed tokens.

Exactly the seed notes' algorithm (Flamingo, Alayrac et al. 2022, Fig. 5):

    x_f = flatten(x_f + time_embeddings)          # [T*S, d]   (time embeddings live outside)
    for each layer:
        x = x + attention(q=x, kv=concat([x_f, x]))
        x = x + ffw(x)
    return norm(x)

Two options, both off by default as in Flamingo: ``where``, added to the media's attention values
only (spatial values, heron.encoders.spatial_values), and latents that compete for media tokens as
Slot Attention's slots do (docs/model.md). Module structure follows OpenFlamingo's so its
checkpoints map one to one (heron.models.openflamingo).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """Pre-norm MLP without biases (Flamingo's FFW): LayerNorm → Linear → GELU → Linear."""
    inner = dim * mult
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(), nn.Linear(inner, dim, bias=False)
    )


class PerceiverAttention(nn.Module):
    """Latents attend to the concatenation of media features and themselves.

    The first ``competing`` latents attend as Slot Attention's slots do (Locatello et al. 2020):
    for them the softmax runs over latents, so they compete for each media token, and each takes
    the weighted mean of what it won (media only). The rest attend as in Flamingo.
    """

    def __init__(self, *, dim: int, heads: int, head_dim: int, competing: int = 0):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.scale, self.competing = heads, head_dim**-0.5, competing
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """media [B, N, d] (N = T*S), latents [B, R, d] -> update for the latents [B, R, d].

        ``where`` [N, d] or [B, N, d], optional: added to the media's values only, through the same
        value projection, so it changes what a latent reads but not where it looks.
        """
        media, latents = self.norm_media(media), self.norm_latents(latents)
        q = self.to_q(latents)  # [B, R, h*dh]
        k, v = self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1)  # [B, N+R, h*dh]
        if where is not None:
            v_where = F.linear(where.to(v.dtype), self.to_kv.weight[v.shape[-1] :])  # [(B,) N, h*dh]
            v = v + F.pad(v_where, (0, 0, 0, latents.shape[1]))  # the latents' own values unchanged
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        logits = q * self.scale @ k.transpose(-1, -2)  # [B, h, R, N+R]
        attn = logits.softmax(dim=-1)
        if self.competing:
            c, n = self.competing, media.shape[1]
            won = logits[:, :, :c, :n].softmax(dim=-2) + 1e-8  # [B, h, c, N]: each media token shared out
            won = won / won.sum(dim=-1, keepdim=True)  # each competing latent: a weighted mean of what it won
            attn = torch.cat([F.pad(won, (0, latents.shape[1])), attn[:, :, c:]], dim=2)  # [B, h, R, N+R]
        out = rearrange(attn @ v, "b h n d -> b n (h d)")  # [B, R, h*dh]
        return self.to_out(out)


class PerceiverResampler(nn.Module):
    """[B, T*S, d] flattened, time-embedded features -> [B, R, d] visual tokens."""

    def __init__(
        self, *, dim: int, depth: int, heads: int, head_dim: int, num_latents: int, ffw_mult: int, competing: int = 0
    ):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim))  # [R, d]
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(dim=dim, heads=heads, head_dim=head_dim, competing=competing),
                    feed_forward(dim, ffw_mult),
                ]
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, media: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """media [B, N, d] (and optionally ``where`` [(B,) N, d], see PerceiverAttention) -> latents [B, R, d]."""
        x = self.latents.to(media.dtype).expand(media.shape[0], -1, -1)  # [B, R, d]
        for attention, ffw in self.layers:
            x = x + attention(media, x, where)
            x = x + ffw(x)
        return self.norm(x)
