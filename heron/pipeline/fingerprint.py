"""What identifies a window's latents: the model and the decode settings (the cache key's fingerprint)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from heron.config import PipelineConfig, config_dir


def model_fingerprint(model: str) -> str:
    """Identify a model for the latents cache: a saved directory by its weights, a preset by its text."""
    path = Path(model)
    if path.is_dir():
        digest = hashlib.blake2b(digest_size=8)
        for name in ("heron.yaml", "model.safetensors"):
            if (path / name).exists():
                stat = (path / name).stat()
                digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return f"dir:{path.resolve().name}:{digest.hexdigest()}"
    preset = path if path.suffix else config_dir() / f"{model}.yaml"
    text = preset.read_bytes() if preset.is_file() else model.encode()
    return f"preset:{path.stem}:{hashlib.blake2b(text, digest_size=8).hexdigest()}"


def encoder_settings(cfg: PipelineConfig) -> dict:
    """Everything that shapes a window's latents: the cache key's fingerprint is made of it."""
    size = list(cfg.decode.size) if isinstance(cfg.decode.size, tuple) else cfg.decode.size
    return {"model": model_fingerprint(cfg.model), "fps": cfg.decode.fps,
            "window_frames": cfg.decode.window_frames, "size": size}
