"""Reading an OpenFlamingo checkpoint, and the structure (sizes, layer positions) its keys imply."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from heron.config import CrossAttentionConfig, ResamplerConfig
from heron.errors import CheckpointMismatchError, ConfigError

HEADS = 8  # OpenFlamingo hard-wires 8 heads (of 64) in the perceiver and the gated layers


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors``.

    Unwraps training checkpoints ({"model_state_dict": ...}) and DDP/FSDP/checkpointing prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"OpenFlamingo checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle.UnpicklingError and friends: say what it means
            raise ConfigError(
                f"{path} is not a weights-only PyTorch checkpoint ({type(error).__name__}: {str(error)[:200]}); "
                "Heron never unpickles arbitrary objects"
            ) from None
    if isinstance(state, dict) and isinstance(state.get("model_state_dict"), dict):
        state = state["model_state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    wrappers = re.compile(r"(^module\.|_fsdp_wrapped_module\.|_checkpoint_wrapped_module\.)")
    return {wrappers.sub("", k): v for k, v in state.items()}


def structure(state: dict[str, torch.Tensor], source: str) -> dict:
    """Perceiver and gated-layer sizes, and where the gated layers sit, read off the keys.

    Returns layers_path, xattn_layers, every_n, dim (the perceiver's width), resampler, xattn."""
    gated: dict[str, set[int]] = {}
    for key in state:
        found = re.match(r"lang_encoder\.(.+)\.(\d+)\.gated_cross_attn_layer\.", key)
        if found:
            gated.setdefault(found.group(1), set()).add(int(found.group(2)))
    if len(gated) > 1:
        raise CheckpointMismatchError(source, unexpected=[f"gated layers under both {' and '.join(sorted(gated))}"])
    path, indices = next(iter(gated.items())) if gated else ("<decoder layers>", {0})
    first = min(indices)
    prefix = f"lang_encoder.{path}.{first}.gated_cross_attn_layer."
    needed = [
        "perceiver.latents",
        "perceiver.layers.0.0.to_q.weight",
        "perceiver.layers.0.1.1.weight",
        prefix + "attn.to_q.weight",
        prefix + "ff.1.weight",
    ]
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointMismatchError(source, missing=missing)
    num_latents, dim = state["perceiver.latents"].shape
    perceiver_inner = state["perceiver.layers.0.0.to_q.weight"].shape[0]
    xattn_inner, lang_dim = state[prefix + "attn.to_q.weight"].shape
    if perceiver_inner % HEADS or xattn_inner % HEADS:
        raise CheckpointMismatchError(
            source,
            mismatched=[
                ("perceiver / gated to_q.weight rows", (perceiver_inner, xattn_inner), (f"multiples of {HEADS} heads",))
            ],
        )
    return dict(
        layers_path=path,
        xattn_layers=sorted(indices),
        every_n=first + 1,
        dim=dim,
        resampler=ResamplerConfig(
            depth=len({k.split(".")[2] for k in state if k.startswith("perceiver.layers.")}),
            heads=HEADS,
            head_dim=perceiver_inner // HEADS,
            num_latents=num_latents,
            ffw_mult=state["perceiver.layers.0.1.1.weight"].shape[0] // dim,
            max_frames=state["perceiver.frame_embs"].shape[0] if "perceiver.frame_embs" in state else 8,
        ),
        xattn=CrossAttentionConfig(
            every_n_layers=first + 1,
            heads=HEADS,
            head_dim=xattn_inner // HEADS,
            ffw_mult=state[prefix + "ff.1.weight"].shape[0] // lang_dim,
            media_attention="immediate",
        ),
    )
