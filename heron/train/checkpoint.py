"""Resumable training checkpoints in safetensors: trainable weights, optimizer, data position, RNG.

    <stage>/checkpoints/step-000500/
        trainable.safetensors   every parameter that trains in this stage, by name
        optimizer.safetensors   AdamW's per-parameter state ("<name>::exp_avg", "::exp_avg_sq", "::step")
        rng.safetensors         torch CPU (and CUDA) generator states
        state.json              step, data order (epoch, cursor), loss history, optimizer hyper-parameters

Frozen weights are not saved: the stage rebuilds them from its starting point (a config or the
previous stage's model directory), which is deterministic. A checkpoint folder is written under
a temporary name and renamed, so a crash never leaves a half checkpoint that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from heron.errors import CheckpointMismatchError

STATE_FILE = "state.json"


@dataclass
class TrainingState:
    step: int  # optimizer steps done
    order: dict  # SampleOrder.state()
    losses: list[float]  # training loss of every step so far
    extra: dict  # anything else worth keeping (eval results)


def _named_trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainingState
) -> Path:
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    params = _named_trainable(model)
    save_file({n: p.detach().contiguous().cpu() for n, p in params.items()}, str(tmp / "trainable.safetensors"))
    index = {id(p): n for n, p in params.items()}
    tensors, groups = {}, []
    for group in optimizer.param_groups:
        groups.append(
            {"params": [index[id(p)] for p in group["params"]], **{k: v for k, v in group.items() if k != "params"}}
        )
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                tensors[f"{index[id(p)]}::{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    meta = {
        "step": state.step,
        "order": state.order,
        "losses": state.losses,
        "extra": state.extra,
        "param_groups": groups,
    }
    (tmp / STATE_FILE).write_text(json.dumps(meta, default=_json_default))
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    return directory


def _json_default(value):
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's state.json")


def load_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainingState:
    """Restore weights, optimizer and RNG from ``directory``; returns the saved TrainingState.

    The model must have the same trainable parameters as when the checkpoint was written.
    """
    directory = Path(directory)
    params = _named_trainable(model)
    saved = load_file(str(directory / "trainable.safetensors"))
    missing, unexpected = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
    mismatched = [
        (n, tuple(saved[n].shape), tuple(p.shape))
        for n, p in params.items()
        if n in saved and saved[n].shape != p.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(str(directory), missing=missing, unexpected=unexpected, mismatched=mismatched)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])
    meta = json.loads((directory / STATE_FILE).read_text())
    tensors = load_file(str(directory / "optimizer.safetensors"))
    by_name = {n: p for n, p in params.items()}
    state_dict = {"state": {}, "param_groups": []}
    order = []
    for group in meta["param_groups"]:
        ids = []
        for name in group["params"]:
            ids.append(len(order))
            order.append(name)
        state_dict["param_groups"].append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
    for i, name in enumerate(order):
        entries = {key.split("::", 1)[1]: t for key, t in tensors.items() if key.split("::", 1)[0] == name}
        if entries:
            state_dict["state"][i] = {k: v.to(by_name[name].device) if k != "step" else v for k, v in entries.items()}
    optimizer.load_state_dict(state_dict)
    rng = load_file(str(directory / "rng.safetensors"))
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    return TrainingState(step=meta["step"], order=meta["order"], losses=meta["losses"], extra=meta.get("extra", {}))


def latest_checkpoint(checkpoints: str | Path) -> Path | None:
    """The newest complete ``step-*`` folder, or None."""
    folder = Path(checkpoints)
    found = (
        sorted(
            p for p in folder.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and (p / STATE_FILE).exists()
        )
        if folder.is_dir()
        else []
    )
    return found[-1] if found else None


def prune_checkpoints(checkpoints: str | Path, keep: int) -> None:
    found = sorted(p for p in Path(checkpoints).glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in found[: max(0, len(found) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
