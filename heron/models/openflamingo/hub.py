"""Fetching OpenFlamingo's files through the Hugging Face hub cache (offline: only what is cached)."""

from __future__ import annotations

import re
from pathlib import Path

from heron.errors import ConfigError


def download_checkpoint(name: str) -> Path:
    """``checkpoint.pt`` of a released model, through the Hugging Face cache."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name, "checkpoint.pt"))
    except Exception as error:
        raise ConfigError(
            f"could not fetch {name}/checkpoint.pt from the Hugging Face hub ({type(error).__name__}); "
            "download it and pass its path instead"
        ) from None


def open_clip_repo_dir(vision: str) -> Path | None:
    """The local directory of a hub repo in open_clip's layout (config + weights), else None.

    None also when the hub cannot be reached: the caller then lets transformers load ``vision``
    as an HF CLIP model."""
    if Path(vision).is_dir() or not re.fullmatch(r"[\w.-]+/[\w.-]+", vision):
        return None
    try:
        from huggingface_hub import hf_hub_download

        directory = Path(hf_hub_download(vision, "open_clip_config.json")).parent
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            try:
                hf_hub_download(vision, name)
                break
            except Exception:
                continue
        return directory
    except Exception:
        return None  # not an open_clip repo (or offline)
