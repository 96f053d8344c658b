"""What identifies a window's latents: the model and the decode settings (the cache key's fingerprint)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from heron.config import PipelineConfig, config_dir, read_yaml
from heron.pipeline.sources import content_id


def model_fingerprint(model: str) -> str:
    """Identify a model for the latents cache: a saved directory by its weights, a preset or YAML
    file by its ``model:`` section (so editing a comment or the pipeline section keeps the cache)."""
    path = Path(model)
    if path.is_dir():
        digest = hashlib.blake2b(digest_size=8)
        for name in ("heron.yaml", "model.safetensors"):  # by content (sampled, as for videos): a copy keeps it
            if (path / name).exists():
                digest.update(f"{name}:{content_id(path / name)}".encode())
        return f"dir:{path.resolve().name}:{digest.hexdigest()}"
    preset = path if path.suffix else config_dir() / f"{model}.yaml"
    section = read_yaml(preset).get("model") if preset.is_file() else None
    text = json.dumps(section, sort_keys=True).encode() if section is not None else model.encode()
    return f"preset:{path.stem}:{hashlib.blake2b(text, digest_size=8).hexdigest()}"


def encoder_settings(cfg: PipelineConfig) -> dict:
    """Everything that shapes a window's latents: the cache key's fingerprint is made of it."""
    size = list(cfg.decode.size) if isinstance(cfg.decode.size, tuple) else cfg.decode.size
    settings = {
        "model": model_fingerprint(cfg.model),
        "fps": cfg.decode.fps,
        "window_frames": cfg.decode.window_frames,
        "size": size,
    }
    if cfg.decode.keyframes:  # only when set: every cache made before the option stays valid
        settings["keyframes"] = True
    return settings
