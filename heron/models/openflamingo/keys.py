"""OpenFlamingo state-dict keys → Heron's (the table is in this package's docstring)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from heron.errors import CheckpointMismatchError
from heron.models.heron_model import HeronModel


@dataclass
class LoadReport:
    """What load_openflamingo took from the checkpoint (the converter decides what to save from it)."""

    checkpoint: str
    lm_keys: list[str] = field(default_factory=list)  # LM (not gated) weights the checkpoint overrode
    vision_from_checkpoint: bool = False
    ignored: list[str] = field(default_factory=list)  # derived buffers (rotary inv_freq, causal masks)
    aliases: int = 0  # OpenFlamingo's duplicate module lists, skipped


# Buffers that older transformers saved and newer ones recompute from the config.
_DERIVED_BUFFERS = re.compile(r"(rotary_emb\.inv_freq|\.attn\.(masked_)?bias|\.attention\.(masked_)?bias)$")


def _lm_key_renamer(lm: torch.nn.Module) -> Callable[[str], str]:
    """transformers' own legacy renames for ``lm`` (e.g. GPT-NeoX ``embed_out`` → ``lm_head``)."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming

        renamings = [t for t in get_model_conversion_mapping(lm) if isinstance(t, WeightRenaming)]
    except Exception:  # transformers moved its internals: names stay as they are, mismatches are reported
        renamings = []

    def rename(key: str) -> str:
        for renaming in renamings:
            key, _ = renaming.rename_source_key(key)
        return key

    return rename


def perceiver_key(key: str) -> str | None:
    """The Heron name of an OpenFlamingo perceiver key, or None for other keys (and media_time_embs,
    a per-media-index embedding Heron does not have)."""
    if key == "perceiver.frame_embs":  # [F, d]: one embedding per frame, added before flattening
        return "encoder.time_embeddings.embeddings"
    if key.startswith("perceiver.") and key != "perceiver.media_time_embs":
        return "encoder.resampler." + key[len("perceiver.") :]
    return None


def perceiver_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The perceiver's weights under Heron's names (frame_embs [F, d] become [F, 1, d])."""
    return {
        perceiver_key(k): (v[:, None] if k == "perceiver.frame_embs" else v)
        for k, v in state.items()
        if perceiver_key(k) is not None
    }


def map_checkpoint(state: dict[str, torch.Tensor], model: HeronModel, layers_path: str, report: LoadReport):
    """OpenFlamingo keys → (Heron keys → tensors, open_clip vision weights, unexpected keys)."""
    rename = _lm_key_renamer(model.lm)
    ignore = [re.compile(p) for p in getattr(model.lm, "_keys_to_ignore_on_load_unexpected", None) or []]
    layer_key = re.compile(rf"{re.escape(layers_path)}\.(\d+)\.(?:decoder_layer\.)?(.+)")
    mapped, vision, unexpected = {}, {}, []
    for key, value in state.items():
        if perceiver_key(key) is not None:
            continue  # perceiver_weights below
        elif key.startswith("vision_encoder."):
            vision[key[len("vision_encoder.") :]] = value
        elif key.startswith(("lang_encoder.old_decoder_blocks.", "lang_encoder.gated_cross_attn_layers.")):
            report.aliases += 1
        elif key.startswith("lang_encoder."):
            inner = key[len("lang_encoder.") :]
            layer = layer_key.fullmatch(inner)
            if layer and layer.group(2).startswith("gated_cross_attn_layer."):
                mapped[f"lm.{inner}"] = value
            else:
                name = rename(f"{layers_path}.{layer.group(1)}.{layer.group(2)}" if layer else inner)
                if _DERIVED_BUFFERS.search(name) or any(p.search(name) for p in ignore):
                    report.ignored.append(key)
                else:
                    mapped[f"lm.{name}"] = value
        else:
            unexpected.append(key)  # includes perceiver.media_time_embs: Heron has no per-media-index embedding
    mapped.update(perceiver_weights(state))
    return mapped, vision, unexpected


def _embedding_keys(model: HeronModel) -> list[str]:
    """Heron state-dict names of the LM's input (and, if untied, output) embedding weights."""
    wanted = {id(m): m for m in (model.lm.get_input_embeddings(), model.lm.get_output_embeddings()) if m is not None}
    return [f"lm.{name}.weight" for name, module in model.lm.named_modules() if id(module) in wanted]


def match_vocabulary(model: HeronModel, mapped: dict[str, torch.Tensor]) -> None:
    """Size the LM's embeddings as OpenFlamingo did: the checkpoint's rows, else len(tokenizer).

    OpenFlamingo calls ``resize_token_embeddings(len(tokenizer))``, which also shrinks
    (RedPajama and MPT pad their vocabularies to 50432 rows; OpenFlamingo has 50280).
    """
    rows = {mapped[k].shape[0] for k in _embedding_keys(model) if k in mapped}
    target = max(rows) if rows else len(model.tokenizer)
    if target < len(model.tokenizer):
        raise CheckpointMismatchError(
            "the checkpoint", mismatched=[("LM embeddings", (target,), (f">= {len(model.tokenizer)} tokens",))]
        )
    if model.lm.get_input_embeddings().weight.shape[0] != target:
        model.lm.resize_token_embeddings(target, mean_resizing=False)
