"""YAML <-> typed dataclasses: strict enough that a typo in a preset is an error naming the key.

Presets live in the repository's ``configs/`` folder (or ``$HERON_CONFIG_DIR``) and are found by
name: ``preset_path("tiny")``. Every section of a preset is one dataclass tree; ``from_dict``
builds it, rejecting unknown keys and wrong types with the dotted path of the bad value.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from heron.errors import ConfigError


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Check a YAML scalar against a dataclass field's type hint (strict enough to catch typos)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where} must be one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(hint):
            return None
        errors = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    base = origin or hint
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base in (int, float, str, bool, list, dict) and not (
        isinstance(value, base) and not (base is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{where} must be {base.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and wrong types by name."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_dir() -> Path:
    """Where presets live: $HERON_CONFIG_DIR, else the repository's ``configs/``."""
    return Path(os.environ.get("HERON_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at top level")
    return data


def preset_names() -> list[str]:
    """Names of the presets in ``config_dir()``, sorted."""
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def preset_path(name_or_path: str | Path) -> Path:
    """The YAML file a preset name (``tiny``) or a path stands for; ConfigError naming the presets if none."""
    path = Path(name_or_path)
    if not path.suffix:
        candidate = config_dir() / f"{name_or_path}.yaml"
        if candidate.exists():
            return candidate
    if not path.is_file():
        raise ConfigError(
            f"no config file or preset named {str(name_or_path)!r} (presets: {', '.join(preset_names())})"
        )
    return path
