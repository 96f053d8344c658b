"""``heron serve``: the long-running HTTP service (FastAPI on uvicorn) over one warm Heron."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output


def serve(
    ctx: typer.Context,
    config: options.Config = None,
    model: options.Model = None,
    host: Annotated[
        str | None, typer.Option("--host", help="address to listen on [default: the preset's serve.host, 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="port to listen on [default: serve.port, 8000]")] = None,
    allow_path: Annotated[
        list[str] | None,
        typer.Option("--allow-path", help="a directory whose videos requests may name by path (repeatable)"),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="a private host, address or network URLs may reach (repeatable)"),
    ] = None,
    redis_url: options.RedisUrl = None,
    ray_address: options.RayAddress = None,
    debug: options.Debug = False,
) -> None:
    """Serve Heron over HTTP: OpenAI-compatible chat with video, sources, jobs, questions, metrics.

    The API key comes from $HERON_API_KEY; it is required unless the service listens on loopback only.
    """
    import uvicorn

    from heron.api import create_app
    from heron.config import load_serve_config
    from heron.errors import ConfigError
    from heron.service import Heron

    out: Output = ctx.obj
    out.configure(debug=debug)
    chosen = config or options.default_config()
    cfg = options.pipeline_config(chosen, model, out)
    serve_cfg = load_serve_config(chosen)
    serve_cfg.host = host or serve_cfg.host
    serve_cfg.port = serve_cfg.port if port is None else port
    serve_cfg.allow_paths = [*serve_cfg.allow_paths, *(allow_path or [])]
    serve_cfg.allow_hosts = [*serve_cfg.allow_hosts, *(allow_host or [])]
    api_key = os.environ.get(serve_cfg.api_key_env) or None
    if api_key is None and not serve_cfg.loopback_only:
        raise ConfigError(
            f"listening on {serve_cfg.host} needs an API key: set ${serve_cfg.api_key_env} "
            "(clients send it as 'Authorization: Bearer <key>'), or listen on 127.0.0.1"
        )
    from heron.service.runtime import init_ray

    out.note("heron: starting Ray")
    init_ray(ray_address)  # in the main thread: Ray's cluster-state calls hang if a worker thread started it
    app = create_app(
        lambda: Heron(cfg, redis_url=redis_url, ray_address=ray_address, progress=False),
        serve_cfg,
        api_key=api_key,
        model_id=_model_id(cfg.model),
    )
    out.flush_later()
    out.note(f"heron: serving {cfg.model} on http://{serve_cfg.host}:{serve_cfg.port} (docs at /docs)")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=serve_cfg.host,
            port=serve_cfg.port,
            log_level="warning",
            timeout_graceful_shutdown=int(serve_cfg.shutdown_grace_s),
        )
    )
    server.run()


def _model_id(model: str) -> str:
    from pathlib import Path

    return Path(model).name if Path(model).is_dir() else Path(model).stem
