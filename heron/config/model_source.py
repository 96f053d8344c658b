"""What a model name stands for — checked cheaply (no torch), so a typo fails before anything starts.

A model is named by a saved directory (``models/demo``: holds ``heron.yaml``), a preset name
(``tiny``) or a YAML file with a ``model:`` section, or an OpenFlamingo checkpoint (a released
model's name ``openflamingo/...`` or a ``checkpoint.pt``). A preset whose ``pipeline.model`` is a
saved directory stands for that directory (``demo`` → ``models/demo``: the preset's trained
model), so ``load_model("demo")`` and ``--model demo`` mean what a user expects. Relative paths
are tried from the working directory, then from the repository root (where presets point).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from heron.config.schema import config_dir, preset_names, read_yaml
from heron.errors import ConfigError

MODEL_CONFIG_FILE = "heron.yaml"  # what makes a directory a saved Heron model


@dataclass(frozen=True)
class ModelSource:
    """A resolved model name. ``trained``: Heron's own layers have trained weights (else random init)."""

    kind: Literal["directory", "preset", "openflamingo"]
    location: str  # the directory, the YAML file, or the OpenFlamingo name / checkpoint path
    trained: bool
    name: str  # what the user typed

    @property
    def label(self) -> str:
        return self.name if self.kind != "directory" else Path(self.location).name


def repo_root() -> Path:
    """The directory presets' relative paths are relative to: the parent of ``config_dir()``."""
    return config_dir().parent


def find_path(text: str | Path) -> Path | None:
    """``text`` as an existing path, from the working directory, else from the repository root."""
    path = Path(text).expanduser()
    if path.exists():
        return path
    if not path.is_absolute() and (repo_root() / path).exists():
        return repo_root() / path
    return None


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / MODEL_CONFIG_FILE).is_file()


def resolve_model_source(name: str | Path) -> ModelSource:
    """What ``name`` stands for; ConfigError naming the problem and the choices when it is nothing."""
    text = str(name)
    if not text.strip():
        raise ConfigError("the model name is empty; give a preset name, a YAML file or a model directory")
    path = find_path(text)
    if path is None and text.startswith("openflamingo/"):
        return ModelSource("openflamingo", text, True, text)
    if path is not None and path.is_file() and path.suffix == ".pt":
        return ModelSource("openflamingo", str(path), True, text)
    if path is not None and path.is_dir():
        if not is_model_dir(path):
            raise ConfigError(
                f"{path} is not a Heron model directory (it has no {MODEL_CONFIG_FILE}); give a "
                "directory written by save_pretrained or `heron train`, or a preset name"
            )
        return ModelSource("directory", str(path.resolve()), True, text)
    yaml_file = path if path is not None and path.is_file() else None
    if yaml_file is None and not Path(text).suffix and (config_dir() / f"{text}.yaml").is_file():
        yaml_file = config_dir() / f"{text}.yaml"
    if yaml_file is None:
        raise ConfigError(
            f"no model, preset or model directory named {text!r} (presets: {', '.join(preset_names())}; "
            f"a model directory holds {MODEL_CONFIG_FILE})"
        )
    return _from_yaml(yaml_file, text)


def _from_yaml(path: Path, name: str) -> ModelSource:
    data = read_yaml(path)
    trained_dir = (data.get("pipeline") or {}).get("model")
    if isinstance(trained_dir, str):
        found = find_path(trained_dir)
        if found is not None and is_model_dir(found):  # the preset's own trained model
            return ModelSource("directory", str(found.resolve()), True, name)
    if "model" not in data:
        raise ConfigError(f"{path} has no 'model:' section (and its pipeline.model is no model directory)")
    return ModelSource("preset", str(path), False, name)
