"""Typed configuration, the ground floor: one dataclass per part, loaded from one YAML file per preset.

    model:     heron.config.model     (vision tower, LM, resampler, cross-attention)
    pipeline:  heron.config.pipeline  (decoding, ingest actors, answering)

Every option is typed, defaulted and documented where its dataclass is; YAML → config → constructor.
"""

from heron.config.live import LiveConfig
from heron.config.model import (
    SPATIAL_VALUES,
    CrossAttentionConfig,
    LMConfig,
    ModelConfig,
    ResamplerConfig,
    RetrievalConfig,
    VisionConfig,
    load_config,
)
from heron.config.pipeline import (
    ActorResources,
    AnswerConfig,
    DecodeConfig,
    IngestConfig,
    PipelineConfig,
    load_pipeline_config,
)
from heron.config.schema import config_dir, from_dict, preset_names, preset_path, read_yaml, to_dict
from heron.config.serve import ServeConfig, load_serve_config

__all__ = [
    "SPATIAL_VALUES",
    "ActorResources",
    "AnswerConfig",
    "CrossAttentionConfig",
    "DecodeConfig",
    "IngestConfig",
    "LMConfig",
    "LiveConfig",
    "ModelConfig",
    "RetrievalConfig",
    "PipelineConfig",
    "ResamplerConfig",
    "ServeConfig",
    "VisionConfig",
    "config_dir",
    "from_dict",
    "load_config",
    "load_pipeline_config",
    "load_serve_config",
    "preset_names",
    "preset_path",
    "read_yaml",
    "to_dict",
]
