"""Options several commands share, and turning them into a checked pipeline config before anything starts."""

from __future__ import annotations

from typing import Annotated

import typer

from heron.cli.output import Output
from heron.config import PipelineConfig, load_pipeline_config
from heron.config.model_source import find_path, is_model_dir, resolve_model_source

DEMO_MODEL = "models/demo"  # shipped; the default model wherever it is present

Config = Annotated[
    str | None,
    typer.Option(
        "--config",
        envvar="HERON_CONFIG",
        show_default=False,
        help="preset name, YAML file with a pipeline: section, or a model directory "
        "[default: demo (the shipped trained model), else tiny]",
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="HERON_MODEL",
        show_default=False,
        help="model preset, YAML file or model directory; overrides the config's",
    ),
]
RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="HERON_REDIS_URL",
        show_default=False,
        help="an external Redis [default: Heron's own local server]",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address", envvar="RAY_ADDRESS", show_default=False, help="join this Ray cluster [default: a local Ray]"
    ),
]
Json = Annotated[bool, typer.Option("--json", help="print the result (and any error) as JSON on stdout")]
Debug = Annotated[bool, typer.Option("--debug", help="show tracebacks and debug logs")]
Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        show_default=False,
        help="status line and progress bars on stderr [default: on a terminal]",
    ),
]


def default_config() -> str:
    """``demo`` when its trained model is shipped, else the random ``tiny`` preset."""
    found = find_path(DEMO_MODEL)
    return "demo" if found is not None and is_model_dir(found) else "tiny"


def pipeline_config(config: str | None, model: str | None, out: Output) -> PipelineConfig:
    """The checked pipeline config for ``--config``/``--model``: a typo is one line, before Ray starts.

    When the model has no trained weights (its answers are noise), ``out.later`` says so once, after
    the result (so that an error stays one line)."""
    chosen = config or default_config()
    cfg = load_pipeline_config(chosen)
    if model:
        cfg.model = model
    source = resolve_model_source(cfg.model)
    if source.kind == "directory":
        cfg.model = source.location
    if not source.trained:
        why = "" if config or model else " (models/demo is missing)"
        out.later(
            f"note: {source.name} has no trained weights (random init), so its answers are noise{why}; "
            "use --config demo or a trained model directory"
        )
    return cfg
