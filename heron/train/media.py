"""Media of a training batch → the model's media tensor, through the model's own encoder.

Every window goes through ``model.encoder`` (vision tower → time embeddings → resampler) with
autograd, and a media item's windows are concatenated in time order as the answer stage does.
The vision tower is frozen in both stages (the loader's policy), so its features of each window
can be kept after first use (``cache_features``): then only time embeddings + resampler run,
which is ``model.encoder.resample``, the second half of the same forward.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from heron.models.heron_model import HeronModel
from heron.train.dataset import MediaLoader, MediaRef


class MediaEncoder:
    def __init__(
        self,
        model: HeronModel,
        loader: MediaLoader,
        *,
        cache_features: bool = True,
        features: dict[str, list[torch.Tensor]] | None = None,
    ):
        """``features``: a cache to share (stages of one run use the same frozen tower)."""
        self.model, self.loader, self.cache_features = model, loader, cache_features
        # media key -> the tower's features of each window, [T, S, d] on the CPU
        self._features: dict[str, list[torch.Tensor]] = {} if features is None else features

    def _tower_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.model.encoder.backbone.parameters())

    def __call__(self, media: list[list[tuple[str, MediaRef]]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample, per item (key, ref) → media [B, M, N, d] and media_mask bool [B, M, N]."""
        use_cache = self.cache_features and self._tower_frozen()
        if use_cache:
            self._fill_cache([item for items in media for item in items])
        windows = [
            (b, m, w, win)
            for b, items in enumerate(media)
            for m, (key, ref) in enumerate(items)
            for w, win in enumerate(self._features[key] if use_cache else self.loader.windows(ref))
        ]
        latents = self._encode([win for *_, win in windows], features=use_cache)
        per_item: dict[tuple[int, int], list[torch.Tensor]] = defaultdict(list)
        for (b, m, _, _), lat in zip(windows, latents):
            per_item[b, m].append(lat)
        per_sample = [[torch.cat(per_item[b, m]) for m in range(len(items))] for b, items in enumerate(media)]
        return self.model.pad_media(per_sample)

    def _encode(self, inputs: list, *, features: bool) -> list[torch.Tensor]:
        """Windows (frames [T, H, W, 3] or cached features [T, S, d]) → latents [R, d] each,
        batched by shape."""
        encoder, device = self.model.encoder, self.model.device
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, x in enumerate(inputs):
            groups[tuple(x.shape)].append(i)
        out: list[torch.Tensor | None] = [None] * len(inputs)
        for indices in groups.values():
            stacked = torch.stack([torch.as_tensor(inputs[i]) for i in indices]).to(device)
            latents = encoder.resample(stacked) if features else encoder(stacked)  # [n, R, d]
            for row, i in enumerate(indices):
                out[i] = latents[row]
        return out

    @torch.no_grad()
    def _fill_cache(self, items: list[tuple[str, MediaRef]], *, max_windows: int = 64) -> None:
        missing = {key: ref for key, ref in items if key not in self._features}
        windows = [(key, w, win) for key, ref in missing.items() for w, win in enumerate(self.loader.windows(ref))]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (_, _, win) in enumerate(windows):
            groups[win.shape].append(i)
        found: dict[tuple[str, int], torch.Tensor] = {}
        backbone, device = self.model.encoder.backbone, self.model.device
        for indices in groups.values():
            for start in range(0, len(indices), max_windows):
                part = indices[start : start + max_windows]
                frames = torch.from_numpy(np.stack([windows[i][2] for i in part])).to(device)
                features = backbone(frames).float().cpu()  # [n, T, S, d]
                for row, i in enumerate(part):
                    found[windows[i][0], windows[i][1]] = features[row].clone()
        for key in missing:
            count = sum(1 for k, _ in found if k == key)
            self._features[key] = [found[key, w] for w in range(count)]

    def warm_up(self, items: list[tuple[str, MediaRef]], *, progress: bool = False, chunk: int = 64) -> None:
        """Compute the tower's features of ``items`` up front (with a progress bar)."""
        if not (self.cache_features and self._tower_frozen()):
            return
        from tqdm import tqdm

        todo = [item for item in dict(items).items() if item[0] not in self._features]
        for start in tqdm(range(0, len(todo), chunk), disable=not progress, desc="vision features", unit="chunk"):
            self._fill_cache(todo[start : start + chunk])
