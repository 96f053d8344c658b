"""Typed configuration of the question-answering pipeline (the ``pipeline:`` section of a preset)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from heron.config import config_dir, from_dict, read_yaml
from heron.errors import ConfigError
from heron.pipeline.decode import DecodeConfig


@dataclass
class ActorResources:
    num_cpus: float = 1.0  # Ray CPU slots per actor; fractions let 3 actors share a 2-core laptop
    num_gpus: float = 0.0  # GPUs per actor; 0 = CPU. The same config runs on a GPU cluster with 1.
    max_restarts: int = 2  # Ray restarts a crashed actor this many times
    max_task_retries: int = 2  # and retries a call that was in flight when it crashed
    max_concurrency: int = 1  # calls served at once (threads); the answer actor can take several


@dataclass
class IngestConfig:
    windows_per_call: int = 4  # windows the decode actor hands over per call = encoder batch
    max_in_flight: int = 2  # encode calls outstanding at once (all decoders together): backpressure
    num_encoders: int = 1  # encode actors (one per GPU on a cluster)
    # decode actors per ingest of a file of known length, each decoding its own run of windows in
    # parallel (decode, one core each, is the limit for HD video on a GPU machine); raise
    # max_in_flight with it so that each has a call to work on
    decode_actors: int = 1
    decode: ActorResources = field(default_factory=lambda: ActorResources(num_cpus=0.5))
    encode: ActorResources = field(default_factory=lambda: ActorResources(num_cpus=1.0))

    def __post_init__(self) -> None:
        for name in ("windows_per_call", "max_in_flight", "num_encoders", "decode_actors"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"pipeline.ingest.{name} must be an integer >= 1, got {value!r}")


@dataclass
class AnswerConfig:
    max_new_tokens: int = 32  # answer length limit, tokens
    max_windows: int = 16  # at most this many cached windows go into one prompt (evenly spaced)
    history_turns: int = 4  # earlier question/answer pairs of the session put into the prompt
    actor: ActorResources = field(default_factory=lambda: ActorResources(num_cpus=0.5, max_concurrency=4))


@dataclass
class PipelineConfig:
    model: str = "tiny"  # preset name, YAML file or saved model directory (heron.load_model)
    device: str | None = None  # overrides the model config's device (e.g. "cpu", "cuda")
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)


def load_pipeline_config(name_or_path: str | Path) -> PipelineConfig:
    """The ``pipeline:`` section of a preset name or YAML file (defaults for what it leaves out)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"no pipeline config file or preset {str(name_or_path)!r}")
    data = read_yaml(path).get("pipeline") or {}
    decode = data.pop("decode", None) or {}
    cfg = from_dict(PipelineConfig, data, f"{path.name}:pipeline")
    try:
        cfg.decode = DecodeConfig(**decode)
    except TypeError as error:
        raise ConfigError(f"{path.name}:pipeline.decode: {error}") from None
    return cfg
