"""LLaVA's connector as an alternative to cross-attention: project visual tokens into the LM's
embedding space and splice them into the text at each ``<image>`` marker."""

from __future__ import annotations

import torch
from torch import nn


class LinearPrefixConnector(nn.Module):
    """Visual tokens [.., R, d_visual] → LM input embeddings [.., R, D] (one linear map)."""

    def __init__(self, *, dim_visual: int, dim_text: int):
        super().__init__()
        self.proj = nn.Linear(dim_visual, dim_text)

    def forward(self, media: torch.Tensor) -> torch.Tensor:
        return self.proj(media)


def splice_media(
    embeds: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    media_embeds: torch.Tensor,
    media_mask: torch.Tensor,
    image_token_id: int,
    *,
    labels: torch.Tensor | None = None,
    pad_left: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Replace the k-th ``<image>`` of each row by its R media embeddings.

    embeds [B, L, D], input_ids/attention_mask [B, L], media_embeds [B, M, N, D] with
    media_mask bool [B, M, N] (padding tokens are dropped) → embeds [B, L', D],
    attention_mask [B, L'], labels [B, L'] (media positions get -100).
    Rows grow by (n_k - 1) per marker and are re-padded on the left (generation) or right (training).
    """
    rows, masks, row_labels = [], [], []
    for b in range(embeds.shape[0]):
        pieces, mask_pieces, label_pieces, start = [], [], [], 0
        markers = (input_ids[b] == image_token_id).nonzero().flatten().tolist()
        for k, pos in enumerate(markers):
            item = media_embeds[b, k][media_mask[b, k]]  # [n_k, D]
            pieces += [embeds[b, start:pos], item]
            mask_pieces += [attention_mask[b, start:pos], attention_mask.new_ones(len(item))]
            if labels is not None:
                label_pieces += [labels[b, start:pos], labels.new_full((len(item),), -100)]
            start = pos + 1
        pieces.append(embeds[b, start:])
        mask_pieces.append(attention_mask[b, start:])
        rows.append(torch.cat(pieces))
        masks.append(torch.cat(mask_pieces))
        if labels is not None:
            label_pieces.append(labels[b, start:])
            row_labels.append(torch.cat(label_pieces))
    width = max(r.shape[0] for r in rows)

    def pad(t: torch.Tensor, value) -> torch.Tensor:
        filler = t.new_full((width - t.shape[0], *t.shape[1:]), value)
        return torch.cat([filler, t] if pad_left else [t, filler])

    out_labels = torch.stack([pad(r, -100) for r in row_labels]) if labels is not None else None
    return torch.stack([pad(r, 0) for r in rows]), torch.stack([pad(m, 0) for m in masks]), out_labels
