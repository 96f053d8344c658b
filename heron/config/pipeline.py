"""The question-answering pipeline's typed configuration (the ``pipeline:`` section of a preset).

Decoding (how frames are sampled), ingest (actors and backpressure) and answering; every field
is typed, defaulted and commented here. ``load_pipeline_config("tiny")`` reads a preset's section.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from heron.config.live import LiveConfig
from heron.config.model_source import MODEL_CONFIG_FILE, find_path, is_model_dir
from heron.config.schema import from_dict, preset_path, read_yaml
from heron.errors import ConfigError

TRAINING_FILE = "training.json"  # beside a trained model: how its training data was decoded


@dataclass(frozen=True)
class DecodeConfig:
    """How to sample and decode a video. Every field is checked when the config is built."""

    fps: float = 1.0  # sampled frames per second of video time (not the video's own fps)
    window_frames: int = 8  # frames per FrameBatch: the encoder's unit of work
    size: int | tuple[int, int] = 224  # int: short side (px), aspect kept up to 4:1; (h, w): exact; even
    max_resolution: int = 8192  # refuse videos wider or taller than this (pixels): guards memory
    # auto: NVDEC (torchcodec) for local files where this process sees a GPU and torchcodec loads,
    # else decord for files, PyAV for URLs and whatever the others cannot read (docs/decoding.md);
    # torchcodec: the GPU only (no fallback); decord, pyav: that backend only
    decoder: Literal["auto", "torchcodec", "decord", "pyav"] = "auto"
    url_timeout_s: float = 10.0  # seconds to wait on a URL (connect or read) before giving up
    # decode keyframes only (torchcodec on the GPU, else PyAV skip_frame=NONKEY), at most fps of
    # them per second, with their real timestamps: a fast skim of long archives. Always a
    # whole-source pass (windows are not on the time grid, so a range is cut at answer time) and
    # a cache of its own.
    keyframes: bool = False
    # a decode that yields no frame for this long (a stalled or spinning demuxer, a URL that
    # trickles bytes) stops with DecodeTimeoutError; every decode is bounded in time
    stall_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.size, list):  # YAML gives lists
            object.__setattr__(self, "size", tuple(self.size))
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"fps must be a positive number of frames per second, got {self.fps}")
        if not (isinstance(self.window_frames, int) and self.window_frames >= 1):
            raise ConfigError(f"window_frames must be an integer >= 1, got {self.window_frames!r}")
        sides = self.size if isinstance(self.size, tuple) else (self.size,)
        even = all(isinstance(s, int) and s > 0 and s % 2 == 0 for s in sides)
        if not even or len(sides) != (2 if isinstance(self.size, tuple) else 1):
            raise ConfigError(f"size must be an even short side or an even (h, w) pair, got {self.size!r}")
        if not (isinstance(self.max_resolution, int) and self.max_resolution >= 2):
            raise ConfigError(f"max_resolution must be an integer >= 2, got {self.max_resolution!r}")
        if self.decoder not in ("auto", "torchcodec", "decord", "pyav"):
            raise ConfigError(f"decoder must be 'auto', 'torchcodec', 'decord' or 'pyav', got {self.decoder!r}")
        if not isinstance(self.keyframes, bool):
            raise ConfigError(f"keyframes must be true or false, got {self.keyframes!r}")
        if self.keyframes and self.decoder == "decord":
            raise ConfigError("keyframes: true decodes with PyAV (decord cannot skip non-key frames); use 'auto'")
        if not (isinstance(self.stall_timeout_s, (int, float)) and self.stall_timeout_s > 0):
            raise ConfigError(f"stall_timeout_s must be a positive number of seconds, got {self.stall_timeout_s!r}")
        if not self.url_timeout_s > 0:
            raise ConfigError(f"url_timeout_s must be positive, got {self.url_timeout_s}")


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
    # ingests that run at once (a batch keeps several videos in flight; each has its own decode
    # actors and shares the encode pool); 1: one at a time
    parallel_ingests: int = 1
    # Every wait is bounded: an encode call that returns nothing for this long (an actor that
    # cannot be scheduled on a full cluster, a hung decoder) fails the ingest with a typed error.
    call_timeout_s: float = 300.0
    decode: ActorResources = field(default_factory=lambda: ActorResources(num_cpus=0.5))
    encode: ActorResources = field(default_factory=lambda: ActorResources(num_cpus=1.0))

    def __post_init__(self) -> None:
        for name in ("windows_per_call", "max_in_flight", "num_encoders", "decode_actors", "parallel_ingests"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"pipeline.ingest.{name} must be an integer >= 1, got {value!r}")


@dataclass
class AnswerConfig:
    max_new_tokens: int = 32  # answer length limit, tokens
    max_windows: int = 16  # at most this many cached windows go into one prompt
    # Which windows, when a range holds more than max_windows (docs/long_videos.md): evenly spaced;
    # the most similar to the question in the retrieval space; or hybrid: half of each. Without
    # retrieval embeddings (a model with no retrieval: section) every mode falls back to evenly.
    selection: Literal["evenly", "similar", "hybrid"] = "hybrid"
    evidence_windows: int = 3  # windows cited as an answer's evidence: the most similar of those used
    # "When ...?" questions (docs/long_videos.md): the window the model names (an ordinal among
    # those it was given), or the window most similar to the question in the retrieval space
    # (moment retrieval: no LM needed; a model without retrieval falls back to its own answer).
    when: Literal["model", "retrieval"] = "model"
    # A question about the start or end of the video ("... at the end of the video?") is answered
    # from the range's first or last window alone, the moment it names (heron/pipeline/moments.py)
    moments: bool = True
    live_newest_windows: int = 2  # a live stream's newest windows are always among those chosen
    history_turns: int = 4  # earlier question/answer pairs of the session put into the prompt
    # Dynamic batching: questions that arrive within batch_window_ms of the first waiting one are
    # answered in one forward pass, up to max_batch of them (docs/serve.md).
    max_batch: int = 16
    batch_window_ms: float = 5.0
    # How long the answer actor may take to start and load its model before a question fails
    # (instead of waiting forever on a cluster with no room for it).
    start_timeout_s: float = 300.0
    # max_concurrency: calls the actor serves at once; each waits on the batcher, so this bounds
    # how many questions can be batched together, not how many forward passes run.
    actor: ActorResources = field(default_factory=lambda: ActorResources(num_cpus=0.5, max_concurrency=64))

    def __post_init__(self) -> None:
        if self.selection not in ("evenly", "similar", "hybrid"):
            raise ConfigError(f"pipeline.answer.selection must be evenly, similar or hybrid, got {self.selection!r}")
        if self.when not in ("model", "retrieval"):
            raise ConfigError(f"pipeline.answer.when must be model or retrieval, got {self.when!r}")
        if not isinstance(self.moments, bool):
            raise ConfigError(f"pipeline.answer.moments must be true or false, got {self.moments!r}")
        if not (isinstance(self.live_newest_windows, int) and self.live_newest_windows >= 0):
            raise ConfigError(
                f"pipeline.answer.live_newest_windows must be an integer >= 0, got {self.live_newest_windows!r}"
            )
        for name in ("max_new_tokens", "max_windows", "max_batch", "evidence_windows"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"pipeline.answer.{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.batch_window_ms, (int, float)) and 0 <= self.batch_window_ms <= 10_000):
            raise ConfigError(
                f"pipeline.answer.batch_window_ms must be within [0, 10000], got {self.batch_window_ms!r}"
            )


@dataclass
class PipelineConfig:
    model: str = "tiny"  # preset name, YAML file or saved model directory (heron.load_model)
    device: str | None = None  # overrides the model config's device (e.g. "cpu", "cuda")
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    # Live stream actors: light (decoding and window cutting; encoding is the encode pool's job)
    stream_actor: ActorResources = field(default_factory=lambda: ActorResources(num_cpus=0.25, max_concurrency=4))


def load_pipeline_config(name_or_path: str | Path) -> PipelineConfig:
    """The pipeline settings a preset name, a YAML file or a saved model directory stands for.

    A preset or YAML file: its ``pipeline:`` section (defaults for what it leaves out; the model
    defaults to the file's own ``model:`` section). A model directory: that model, decoded as it was
    trained (``training.json``'s decode settings, when the directory has them). ConfigError naming
    the presets when ``name_or_path`` is none of these.
    """
    found = find_path(name_or_path)
    if found is not None and found.is_dir():
        return _model_dir_config(found)
    path = preset_path(name_or_path)
    data = read_yaml(path)
    section = dict(data.get("pipeline") or {})
    section.setdefault("model", str(path) if "model" in data else "tiny")
    cfg = from_dict(PipelineConfig, section, f"{path.name}:pipeline")
    located = find_path(cfg.model)  # presets name model directories relative to the repository
    if located is not None:
        cfg.model = str(located)
    return cfg


def _model_dir_config(directory: Path) -> PipelineConfig:
    if not is_model_dir(directory):
        raise ConfigError(
            f"{directory} is not a Heron model directory (it has no {MODEL_CONFIG_FILE}); give a "
            "preset name, a YAML file with a pipeline: section, or a model directory"
        )
    cfg = PipelineConfig(model=str(directory.resolve()))
    training = directory / TRAINING_FILE
    if training.is_file():
        try:
            decode = json.loads(training.read_text()).get("decode")
        except ValueError as error:
            raise ConfigError(f"{training} is not valid JSON: {error}") from None
        if decode:
            cfg.decode = from_dict(DecodeConfig, decode, f"{training}:decode")
    return cfg
