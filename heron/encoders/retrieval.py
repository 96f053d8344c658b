"""Windows and questions in one joint text-video space, so a question finds the windows it is about.

A CLIP or SigLIP checkpoint (``AutoModel``): ``get_image_features`` embeds a few evenly spaced
frames of each window, averaged (the window's embedding); ``get_text_features`` embeds a
question. Both are L2-normalised, so their dot product is the cosine similarity the answer stage
ranks windows by (docs/long_videos.md). Frozen: it only ever runs under ``torch.no_grad``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from heron.config import RetrievalConfig
from heron.encoders.preprocess import PreprocessSettings, preprocess
from heron.errors import ConfigError

# The processors' published defaults, used when a checkpoint has no preprocessor_config.json.
_DEFAULTS = {
    "clip": PreprocessSettings(
        0, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), "bicubic", True
    ),
    "siglip": PreprocessSettings(0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", False),
}


def _features(out) -> torch.Tensor:
    """transformers returns a tensor, or (5.x) an output whose pooler_output is the projection."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class RetrievalEmbedder(nn.Module):
    def __init__(self, model: nn.Module, tokenizer, settings: PreprocessSettings, frames_per_window: int):
        super().__init__()
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.frames_per_window = frames_per_window
        # CLIP's text tower reads its summary at the end-of-text token: add it when the tokenizer
        # does not (a word-level one, as the demo model's, adds nothing)
        eos = tokenizer.eos_token
        self._suffix = eos if eos and tokenizer.eos_token_id not in tokenizer("a")["input_ids"] else ""
        self.requires_grad_(False)

    @classmethod
    def load(cls, cfg: RetrievalConfig) -> RetrievalEmbedder | None:
        """The embedder ``cfg`` names (hub id or directory); None when it names none."""
        if not cfg.name_or_path:
            return None
        try:
            model = AutoModel.from_pretrained(cfg.name_or_path)
            tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path)
        except OSError as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(
                f"cannot load the retrieval model {cfg.name_or_path!r}: {detail}; give an existing directory, "
                "or a hub id whose files are in the Hugging Face cache"
            ) from None
        kind = model.config.model_type
        if kind not in _DEFAULTS or not hasattr(model, "get_text_features"):
            raise ConfigError(
                f"retrieval.name_or_path {cfg.name_or_path!r} is a {kind!r} model; it must be a CLIP or SigLIP "
                "checkpoint with both towers (text and vision)"
            )
        return cls(model, tokenizer, _settings(cfg.name_or_path, kind, model), cfg.frames_per_window)

    def save_pretrained(self, directory: str | Path) -> None:
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    @torch.no_grad()
    def embed_windows(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, T, H, W, 3] → one unit vector per window [B, p] (float32)."""
        batch, num_frames = frames.shape[:2]
        picks = torch.linspace(0, num_frames - 1, min(self.frames_per_window, num_frames)).round().long()
        chosen = frames[:, picks].flatten(0, 1).to(self.device)  # [B * k, H, W, 3]
        pixels = preprocess(chosen, self.settings, self.dtype)  # [B * k, 3, S, S]
        per_frame = F.normalize(_features(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1)
        return F.normalize(per_frame.view(batch, len(picks), -1).mean(dim=1), dim=-1)  # [B, p]

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Questions → unit vectors [n, p] (float32), truncated to the text tower's context."""
        limit = getattr(self.model.config.text_config, "max_position_embeddings", None)
        texts = [t + self._suffix for t in texts]
        tokens = self.tokenizer(
            texts, padding=True, truncation=limit is not None, max_length=limit, return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        return F.normalize(_features(self.model.get_text_features(**inputs)).float(), dim=-1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def _settings(name: str, kind: str, model: nn.Module) -> PreprocessSettings:
    base = _DEFAULTS[kind]
    found = dict(mean=base.mean, std=base.std, resize_mode=base.resize_mode, center_crop=base.center_crop)
    try:
        processor = AutoImageProcessor.from_pretrained(name)
        found.update(mean=tuple(processor.image_mean), std=tuple(processor.image_std))
        found["center_crop"] = bool(getattr(processor, "do_center_crop", found["center_crop"]))
    except (OSError, ValueError):
        pass  # no preprocessor_config.json next to the weights: the published defaults
    return PreprocessSettings(image_size=model.config.vision_config.image_size, **found)
