"""``heron ask SOURCE QUESTION``: one question about a video file, URL or live stream."""

from __future__ import annotations

from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output
from heron.text import span


def ask(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="video file or http(s) URL")],
    question: Annotated[str, typer.Argument(help='the question, e.g. "What color is the square?"')],
    session: Annotated[str | None, typer.Option("--session", help="continue the dialogue of this session id")] = None,
    start: Annotated[float | None, typer.Option("--from", help="start of the time range, seconds")] = None,
    last: Annotated[
        float | None, typer.Option("--last", help="a live stream: ask about its last N seconds (it must be running)")
    ] = None,
    end: Annotated[float | None, typer.Option("--to", help="end of the time range, seconds")] = None,
    config: options.Config = None,
    model: options.Model = None,
    redis_url: options.RedisUrl = None,
    ray_address: options.RayAddress = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="HERON_URL",
            show_default=False,
            help="ask this running `heron serve` instead of starting the pipeline here",
        ),
    ] = None,
    json: options.Json = False,
    progress: options.Progress = None,
    debug: options.Debug = False,
) -> None:
    """Answer a question about a video, printing the time spans the answer used.

    The video is decoded and encoded once; later questions about it read its latents from Redis.
    """
    from heron.pipeline.answer import check_question
    from heron.pipeline.sources import resolve_source
    from heron.pipeline.windows import check_time_range

    out: Output = ctx.obj
    out.configure(json=json, debug=debug, progress=progress)
    # Everything that can be checked without Redis or Ray is checked first: a typo costs nothing.
    check_question(question)
    start, end = check_time_range(start, end)
    live = last is not None or source.split("://", 1)[0].lower() in ("rtsp", "rtsps", "udp", "rtmp", "srt")
    if not live:
        resolve_source(source)
    if server:
        return _ask_server(out, server, source, question, start, end, session, last)
    cfg = options.pipeline_config(config, model, out)
    from heron.service import Heron

    with out.working():
        out.status("starting Redis")
        with Heron(
            cfg, redis_url=redis_url, ray_address=ray_address, progress=out.interactive, on_status=out.status
        ) as heron:
            result = heron.ask(
                source, question, start=start, end=end, session_id=session, **({"last_s": last} if live else {})
            )
    _show(
        out,
        result.to_dict(),
        ranged=start is not None or end is not None,
        gap=1.5 / cfg.decode.fps,
        summary=result.summary(),
    )


def _ask_server(out: Output, server: str, source: str, question: str, start, end, session, last) -> None:
    from heron.cli.client import HeronClient

    with HeronClient(server) as client:
        result = client.ask(source, question, **{"from": start, "to": end, "session": session, "last": last})
    gap = 1.5 / result["fps"] if result.get("fps") else 0.0
    _show(out, result, ranged=start is not None or end is not None, gap=gap, summary=f"answered by {server}")


def _show(out: Output, result: dict, *, ranged: bool, gap: float, summary: str) -> None:
    """The same output whether the pipeline ran here or on a server."""
    if out.json:
        out.emit_json(result)
        return
    out.print(result["answer"] or "(no answer)")
    used = ", ".join(span(a, b) for a, b in merge_spans([tuple(s) for s in result["spans"]], gap=gap))
    whole = " (whole windows around the range)" if ranged else ""
    out.print(f"  used: {used}{whole}   session: {result['session']}")
    cited = result.get("evidence") or []
    if cited and len(cited) < len(result["spans"]):  # chosen by question: the windows most like it
        out.print(f"  evidence: {', '.join(span(a, b) for a, b in cited)}")
    for warning in result.get("warnings", []):
        out.note(f"  note: {warning}")
    out.note(f"  {summary}")
    out.flush_later()


def merge_spans(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """Adjacent windows shown as one span: a window ends one sampled frame before the next starts."""
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]
