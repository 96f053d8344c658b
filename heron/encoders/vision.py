"""A frozen Hugging Face vision tower (CLIP or SigLIP) returning patch features per frame."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoImageProcessor, CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

from heron.config import VisionConfig
from heron.encoders.preprocess import PreprocessSettings, check_frames, preprocess
from heron.errors import ConfigError, FrameFormatError

_TOWERS = {
    "clip": (CLIPVisionModel, CLIPVisionConfig),
    "siglip": (SiglipVisionModel, SiglipVisionConfig),
}
# The processors' published defaults, used when a tower has no preprocessor_config.json.
_DEFAULT_PREPROCESS = {
    "clip": dict(
        mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711),
        resize_mode="bicubic",
        center_crop=True,
    ),
    "siglip": dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode="bicubic", center_crop=False),
}


def build_vision_tower(cfg: VisionConfig) -> nn.Module:
    """Load the tower with ``from_pretrained`` (hub id or dir) or build it randomly from ``cfg.init``."""
    if cfg.kind not in _TOWERS:
        raise ConfigError(f"vision.kind must be one of {sorted(_TOWERS)}, got {cfg.kind!r}")
    model_cls, config_cls = _TOWERS[cfg.kind]
    if cfg.name_or_path:
        try:
            return model_cls.from_pretrained(cfg.name_or_path)
        except OSError as error:  # no such directory, or a hub id this (offline) machine has not cached
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(
                f"cannot load the vision tower {cfg.name_or_path!r}: {detail}; give an existing "
                "directory, or a hub id whose files are in the Hugging Face cache"
            ) from None
    return model_cls(config_cls(**cfg.init))


def preprocess_settings(cfg: VisionConfig, tower: nn.Module) -> PreprocessSettings:
    """The backbone's own processor settings, overridden by any field set in the config."""
    found: dict = dict(_DEFAULT_PREPROCESS[cfg.kind])
    if cfg.name_or_path:
        try:
            processor = AutoImageProcessor.from_pretrained(cfg.name_or_path)
            found.update(mean=tuple(processor.image_mean), std=tuple(processor.image_std))
            found["center_crop"] = bool(getattr(processor, "do_center_crop", found["center_crop"]))
        except (OSError, ValueError):
            pass  # no preprocessor_config.json next to the weights: keep the published defaults
    overrides = dict(mean=cfg.image_mean, std=cfg.image_std, resize_mode=cfg.resize_mode, center_crop=cfg.center_crop)
    found.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None})
    return PreprocessSettings(image_size=cfg.image_size or tower.config.image_size, **found)


class VisionBackbone(nn.Module):
    """uint8 frames [B, T, H, W, 3] -> patch features [B, T, S, d] from a frozen tower."""

    def __init__(self, cfg: VisionConfig, tower: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.tower = tower if tower is not None else build_vision_tower(cfg)
        self.settings = preprocess_settings(cfg, self.tower)
        self.has_cls = cfg.kind == "clip"

    @property
    def dim(self) -> int:
        return self.tower.config.hidden_size

    @property
    def tokens_per_frame(self) -> int:
        """S: patch tokens per frame, plus the CLS token when it is kept."""
        side = self.settings.image_size // self.tower.config.patch_size
        return side * side + int(self.has_cls and self.cfg.keep_cls)

    def pixel_values(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> normalised pixels [N, 3, size, size] on the tower's device."""
        param = next(self.tower.parameters())
        return preprocess(frames.to(param.device), self.settings, param.dtype)

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixels [N, 3, size, size] -> [N, S, d] from the configured hidden layer."""
        out = self.tower(pixel_values=pixel_values, output_hidden_states=True)
        hidden = out.hidden_states[self.cfg.hidden_layer]  # [N, 1+P or P, d]
        if self.has_cls and not self.cfg.keep_cls:
            hidden = hidden[:, 1:]
        return hidden

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] -> features [B, T, S, d]."""
        check_frames(frames)
        if frames.ndim != 5:
            raise FrameFormatError(f"frames must be [B, T, H, W, 3], got shape {tuple(frames.shape)}")
        batch, num_frames = frames.shape[:2]
        pixels = self.pixel_values(frames.flatten(0, 1))  # [B*T, 3, size, size]
        return self.features(pixels).unflatten(0, (batch, num_frames))  # [B, T, S, d]

    def save_tower(self, directory: Path) -> None:
        self.tower.save_pretrained(directory)
