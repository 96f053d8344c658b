"""Typed training configuration: the ``train:`` (and optional ``pretrain:``) section of a preset.

One YAML file describes a whole run: ``model:`` (heron.config.ModelConfig, whose
``vision.name_or_path`` / ``lm.name_or_path`` point at the backbones), ``train:`` (data and the
stages of the recipe) and, for the demo model only, ``pretrain:`` (the tiny backbones trained
from scratch). Every field is typed, defaulted and commented here; YAML → dataclass → trainer.
Relative paths in the file are relative to the directory the command runs in (the repo root).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from heron.config import DecodeConfig, ModelConfig, from_dict, read_yaml
from heron.config.model_source import find_path, is_model_dir
from heron.errors import ConfigError

Trainable = Literal["connector", "end_to_end"]
LabelMode = Literal["answers", "text"]


@dataclass
class DataConfig:
    train: str = ""  # interleaved JSONL (docs/training.md) of training samples
    val: str | None = None  # interleaved JSONL for the periodic validation loss
    val_questions: str | None = None  # a QA manifest (synthetic format) for periodic accuracy
    # How media are decoded: must match the pipeline's `pipeline.decode` so that training sees
    # the frames inference will see (configs/demo.yaml shares one YAML anchor between them).
    decode: dict[str, Any] = field(default_factory=lambda: {"fps": 1.0, "window_frames": 8, "size": 224})
    # answers: loss only on the text after each "Answer:" up to and including its
    # <|endofchunk|> (VQA fine-tuning); text: every text token (Flamingo pretraining)
    labels: LabelMode = "answers"
    # How `heron pretrain` / the demo recipe writes `train` from the synthetic manifest (not used
    # when `train` is your own file): dense = every question each clip supports, split into
    # samples of at most max_turns question-answer turns.
    dense_questions: bool = False
    max_turns: int | None = None
    # Where the demo recipe writes one captioning sample per training clip (scored on all text;
    # LLaVA's alignment data); stages use it by naming it in their `train:` list. None = not written.
    captions: str | None = None
    # Likewise for the validation clips: a stage's `val:` names it to measure caption loss.
    val_captions: str | None = None
    # Where the demo recipe writes the question-answer samples of its long training videos (each
    # given whole, several windows in one media item); a stage names it in its `train:` list.
    long_train: str | None = None
    frame_cache: str | None = None  # folder for decoded uint8 frames (.npy); None = decode each time
    # Keep the frozen vision tower's features of every media item in RAM after first use. The tower
    # is frozen in both stages, so this changes no number, only the time (tested).
    cache_features: bool = True

    def decode_config(self) -> DecodeConfig:
        try:
            return DecodeConfig(**self.decode)
        except TypeError as error:
            raise ConfigError(f"train.data.decode: {error}") from None


@dataclass
class StageConfig:
    name: str = "stage1"  # output subfolder; also shown on the progress bar
    # connector: vision tower and LM frozen (Flamingo; LLaVA stage 1);
    # end_to_end: the LM trains too (LLaVA stage 2). The loader's freezing policy applies it.
    trainable: Trainable = "connector"
    # This stage's training files, mixed (each sample keeps its own label mode); empty = [data.train]
    train: list[str] = field(default_factory=list)
    val: str | None = None  # this stage's validation JSONL (its val_loss); None = data.val
    steps: int = 1000  # optimizer steps
    batch_size: int = 16  # samples per micro-batch
    grad_accumulation: int = 1  # micro-batches per optimizer step (effective batch = product)
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50  # linear warm-up from 0 to lr
    weight_decay: float = 0.01  # on matrices only (not biases, norms, gates, nor no_weight_decay)
    # Parameter-name substring -> learning-rate multiplier. The time embeddings start at 0.02 next
    # to vision features of unit scale per channel, so at the base rate they take thousands of
    # steps to carry any order; a larger rate lets them matter within a short CPU run. Likewise
    # the tanh gates (attn_gate, ff_gate) start at 0 and scale the gradient of everything behind
    # them, so in a short run they stay nearly shut unless they learn faster (docs/training.md).
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    no_weight_decay: list[str] = field(
        default_factory=lambda: ["time_embeddings", "spatial_values.space", "resampler.latents"]
    )
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    eval_every: int = 0  # steps between validation runs; 0 = only at the end
    eval_samples: int = 64  # validation samples for the loss
    eval_questions: int = 200  # questions of data.val_questions for accuracy (0 = skip)
    checkpoint_every: int = 0  # steps between resumable checkpoints; 0 = only at the end
    keep_checkpoints: int = 2  # newest checkpoints kept per stage


@dataclass
class TrainConfig:
    output_dir: str = "runs/heron"  # stage folders, checkpoints and the final model go here
    data: DataConfig = field(default_factory=DataConfig)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    seed: int = 0  # data order and anything random in training
    device: str = "auto"  # auto = cuda when available
    bf16: bool = True  # bf16 autocast on CUDA (weights stay fp32); ignored on CPU
    threads: int = 0  # torch CPU threads; 0 = torch's default
    progress: bool = True  # a progress bar with the loss
    save_to: str | None = None  # copy the last stage's model here (e.g. models/demo)
    # Fine-tune: start the first stage from this Heron model directory (its backbones and Heron's
    # trained layers) instead of from the model: section with Heron's layers freshly initialised.
    # With it the model: section may be left out (it is read from the directory).
    init: str | None = None


@dataclass
class TokenizerPretrainConfig:
    out: str = "build/backbones/tokenizer"  # where the word-level tokenizer is saved
    lowercase: bool = True  # questions may be typed in any case; answers are lower case


@dataclass
class VisionPretrainConfig:
    out: str = "build/backbones/vision"  # CLIPVisionModel.save_pretrained folder
    init: dict[str, Any] = field(default_factory=dict)  # CLIPVisionConfig kwargs of the tower
    text_init: dict[str, Any] = field(default_factory=dict)  # CLIPTextConfig kwargs
    # Where the whole CLIP (both towers) is also saved; the retrieval step starts from it. None: not kept.
    clip_out: str | None = None
    projection_dim: int = 64  # shared embedding width of the contrastive loss
    caption_grid: int = 3  # frame captions place objects on a grid x grid (3 or 5) layout
    clips: int = 2000  # training clips whose frames are used
    steps: int = 600
    batch_size: int = 256  # frame/caption pairs per step
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.05


@dataclass
class LMPretrainConfig:
    out: str = "build/backbones/lm"  # AutoModelForCausalLM.save_pretrained folder (+ tokenizer)
    architecture: str = "gpt2"  # HF model_type
    init: dict[str, Any] = field(default_factory=dict)  # HF config kwargs (vocab and ids are filled in)
    steps: int = 600
    batch_size: int = 64  # text sequences per step
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01


@dataclass
class SyntheticDataConfig:
    out: str = "build/data"  # root folder: <out>/<split>/manifest.jsonl, videos/, clips.jsonl
    seed: int = 0  # base seed of heron.data.synthetic
    train_clips: int = 4000
    val_clips: int = 200
    test_clips: int = 300
    size: int = 96  # frame side of the generated videos, px
    frames: int = 16
    fps: float = 8.0
    # Long videos (heron.data.synthetic.long): training ones short enough to be given whole
    # (`train.data.long_train` samples), and a test split for `heron eval` (docs/long_videos.md).
    long_train_videos: int = 0
    long_train_seconds: tuple[float, float] = (8.0, 32.0)
    long_train_events: tuple[int, int] = (2, 4)
    long_test_videos: int = 0
    long_test_seconds: tuple[float, float] = (300.0, 300.0)
    long_test_events: tuple[int, int] = (3, 5)


@dataclass
class RetrievalPretrainConfig:
    """The retrieval text tower of the demo model: the vision pretraining's CLIP (both towers)
    tuned on question-like texts with its vision tower frozen (LiT), docs/long_videos.md."""

    out: str = "build/backbones/retrieval"  # CLIPModel.save_pretrained folder (+ tokenizer)
    clips: int = 1500  # training clips whose frames are used
    steps: int = 800
    batch_size: int = 256  # frames (and as many texts) per step
    lr: float = 1e-3
    warmup_steps: int = 50


@dataclass
class PretrainConfig:
    """The demo model's backbones, from scratch (real use loads pretrained CLIP/SigLIP and an LLM)."""

    data: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    tokenizer: TokenizerPretrainConfig = field(default_factory=TokenizerPretrainConfig)
    vision: VisionPretrainConfig = field(default_factory=VisionPretrainConfig)
    lm: LMPretrainConfig = field(default_factory=LMPretrainConfig)
    retrieval: RetrievalPretrainConfig | None = None  # None: the model gets no retrieval tower


@dataclass
class RunConfig:
    """A whole training preset: the model, the training recipe and (optionally) pretraining."""

    model: ModelConfig
    train: TrainConfig
    pretrain: PretrainConfig | None = None
    source: str = ""  # the YAML file it came from


def _model_dir_config(directory: str, source: Path) -> ModelConfig:
    found = find_path(directory)
    if found is None or not is_model_dir(found):
        raise ConfigError(f"{source.name}:train.init {directory!r} is not a Heron model directory (no heron.yaml)")
    return from_dict(ModelConfig, read_yaml(found / "heron.yaml"), str(found / "heron.yaml"))


def check_backbones(run: RunConfig) -> None:
    """A backbone named by a local path that is not there is one line naming it (and what makes it),
    before any model is built. Hub ids (``org/name``) are left to ``from_pretrained``."""
    if run.train.init:
        return
    for part, cfg in (("vision", run.model.vision), ("lm", run.model.lm)):
        name = cfg.name_or_path
        if not name or find_path(name) is not None or _looks_like_hub_id(name):
            continue
        made_by = run.pretrain is not None and any(
            Path(name) == Path(out) for out in (run.pretrain.vision.out, run.pretrain.lm.out)
        )
        hint = (
            f"run `heron pretrain {run.source}` first: its pretrain: section builds it"
            if made_by
            else "train or download it there, or name a hub id"
        )
        raise ConfigError(f"{run.source}: model.{part}.name_or_path {name!r} does not exist; {hint}")


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def load_run_config(path: str | Path) -> RunConfig:
    """Read ``model:``, ``train:`` and optional ``pretrain:`` sections of a YAML preset or file."""
    from heron.config import config_dir

    path = Path(path)
    if not path.suffix and not path.exists():
        path = config_dir() / f"{path}.yaml"
    if not path.is_file():
        raise ConfigError(f"no training config {str(path)!r}; pass a YAML file with model: and train: sections")
    data = read_yaml(path)
    if "train" not in data:
        raise ConfigError(f"{path} has no 'train:' section")
    train = from_dict(TrainConfig, data["train"], f"{path.name}:train")
    if "model" in data:
        model = from_dict(ModelConfig, data["model"], f"{path.name}:model")
    elif train.init:
        model = _model_dir_config(train.init, path)
    else:
        raise ConfigError(f"{path} has no 'model:' section (give one, or train.init: a model directory to fine-tune)")
    train.stages = [
        from_dict(StageConfig, s, f"{path.name}:train.stages[{i}]") if isinstance(s, dict) else s
        for i, s in enumerate(train.stages)
    ]
    if not train.stages:
        raise ConfigError(f"{path.name}:train.stages is empty; give at least one stage")
    names = [s.name for s in train.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path.name}:train.stages have repeated names {names}")
    train.data.decode_config()  # fail now on a bad decode section
    pretrain = from_dict(PretrainConfig, data["pretrain"], f"{path.name}:pretrain") if data.get("pretrain") else None
    return RunConfig(model=model, train=train, pretrain=pretrain, source=str(path))
