"""``heron cache ls | clear``: the window latents cached in Redis, whatever model made them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output
from heron.text import plural, seconds

app = typer.Typer(help="list or clear cached window latents (every model's)", no_args_is_help=True)


def _latents(redis_url: str | None):
    from heron.state import LatentStore, RedisConnection, ensure_redis

    return LatentStore(RedisConnection(ensure_redis(redis_url)), {})


@app.command("ls")
def ls(
    ctx: typer.Context,
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """List every cached source: windows, length, state, the model that encoded it, its path or URL."""
    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    infos = _latents(redis_url).every_source()
    if out.json:
        out.emit_json([asdict(info) for info in infos])
        return
    if not infos:
        out.note("the cache is empty")
    for info in infos:
        state = "complete" if info.complete else "partial"
        model = model_label(info.settings)
        out.print(
            f"{info.source_id}  {plural(info.cached_windows, 'window'):>12}  {seconds(info.duration_s):>9}  "
            f"{state:8}  {model:12}  {info.name or '?'}"
        )


def model_label(settings: dict) -> str:
    """``tiny`` for the fingerprint ``preset:tiny:1a2b...``, ``demo`` for ``dir:demo:...``."""
    kind, _, rest = str(settings.get("model", "?")).partition(":")
    return rest.rpartition(":")[0] or kind


@app.command("clear")
def clear(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Argument(help="only this source: a file, URL or content id")] = None,
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """Delete cached latents: of one source (for every model), or of every source."""
    from heron.pipeline.sources import content_id

    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    latents = _latents(redis_url)
    infos = latents.every_source()
    if source is not None:
        wanted = source if any(info.source_id == source for info in infos) else content_id(source)
        infos = [info for info in infos if info.source_id == wanted]
    keys = sum(latents.with_settings(info.settings).clear_source(info.source_id) for info in infos)
    sources = len({info.source_id for info in infos})
    if out.json:
        out.emit_json({"sources": sources, "entries": len(infos), "keys": keys})
    else:
        out.note(
            f"cleared {plural(sources, 'source')} ({plural(len(infos), 'cache entry', 'cache entries')}, "
            f"{plural(keys, 'key')})"
        )
