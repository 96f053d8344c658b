"""``heron watch``, ``heron alerts``, ``heron streams``: live streams, standing questions, their alerts."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output
from heron.text import plural

alerts_app = typer.Typer(help="read the alerts of live streams", no_args_is_help=True)
streams_app = typer.Typer(help="list or stop live streams", no_args_is_help=True)


def watch(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="rtsp://, http(s):// (MPEG-TS, FLV, MJPEG, HLS), /dev/video0, or a file")
    ],
    alert: Annotated[
        list[str],
        typer.Option("--alert", help='a yes/no question to watch for (repeatable), e.g. "Is a person at the door?"'),
    ],
    every: Annotated[
        int | None, typer.Option("--every", help="score on every N-th new window [default: live.watch_every]")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="P(yes) that counts as yes [default: 0.5]")
    ] = None,
    cooldown: Annotated[
        float | None, typer.Option("--cooldown", help="seconds after an event before the next [default: 30]")
    ] = None,
    example: Annotated[
        list[str] | None,
        typer.Option(
            "--example",
            help="a labelled example clip for every question: yes:FILE or no:FILE[:FROM-TO] "
            "(repeatable; few-shot, no training)",
        ),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook", help="POST each alert to this URL (retried, HMAC-signed with $HERON_WEBHOOK_SECRET when set)"
        ),
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="play a local file at real-time speed as a live stream")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="the stream's id [default: derived from the source]")
    ] = None,
    config: options.Config = None,
    model: options.Model = None,
    redis_url: options.RedisUrl = None,
    ray_address: options.RayAddress = None,
    json: Annotated[bool, typer.Option("--json", help="print each alert as one JSON line")] = False,
    progress: options.Progress = None,
    debug: options.Debug = False,
) -> None:
    """Watch a live stream until Ctrl-C: alerts as they come, and a status line.

    The status line shows lag behind live, frames/s, windows, reconnects and gaps."""
    import os

    from heron.pipeline.answer import check_question
    from heron.pipeline.live import live_spec

    out: Output = ctx.obj
    out.configure(json=json, debug=debug, progress=progress)
    questions = [check_question(q) for q in alert]
    live_spec(source, realtime=realtime)  # a typo fails here, before Ray starts
    examples = [_example(text) for text in example or []]
    cfg = options.pipeline_config(config, model, out)
    out.flush_later()
    from heron.service import Heron

    secret = os.environ.get("HERON_WEBHOOK_SECRET") or None
    with (
        out.working(),
        Heron(cfg, redis_url=redis_url, ray_address=ray_address, progress=False, on_status=out.status) as heron,
    ):
        streams = heron.streams
        watches = [
            streams.make_watch(
                q,
                watch_id=f"q{i + 1}",
                every=every,
                threshold=threshold,
                cooldown_s=cooldown,
                examples=examples,
                webhook=webhook,
                webhook_secret=secret,
            )
            for i, q in enumerate(questions)
        ]
        heron.warm_up()
        stream_id = streams.start(source, stream_id=name, realtime=realtime, watches=watches)
        delivery = heron.webhooks() if webhook else None
        out.note(f"watching {source} as {stream_id}: {', '.join(repr(q) for q in questions)} (Ctrl-C stops)")
        cursor = "$"
        try:
            while True:
                for item in heron.alerts.wait({stream_id: cursor}, timeout_s=1.0):
                    cursor = item.alert_id
                    _print_alert(out, item)
                status = streams.status(stream_id)
                out.status(_status_line(status))
                if status["status"] in ("ended", "failed"):
                    out.clear_status()
                    out.note(f"the stream {status['status']}" + (f": {status['error']}" if status.get("error") else ""))
                    break
        except KeyboardInterrupt:
            out.clear_status()
            out.note("stopping")
        finally:
            if delivery is not None:
                delivery.close()
            streams.stop(stream_id)


def _example(text: str) -> tuple[str, str, float | None, float | None]:
    from heron.errors import ConfigError

    label, _, rest = text.partition(":")
    if label not in ("yes", "no") or not rest:
        raise ConfigError(f"--example {text!r}: write yes:FILE or no:FILE[:FROM-TO]")
    path, start, end = rest, None, None
    head, _, span = rest.rpartition(":")
    if head and "-" in span and all(p.replace(".", "", 1).isdigit() for p in span.split("-", 1)):
        path, (start, end) = head, (float(x) for x in span.split("-", 1))
    return label, path, start, end


def _status_line(status: dict) -> str:
    return (
        f"{status['status']}: {plural(status['windows'], 'window')}, lag {status.get('lag_s', 0.0):.1f} s, "
        f"{status.get('decode_fps', 0.0):.1f} frames/s decoded, {plural(status['reconnects'], 'reconnect')}, "
        f"{plural(len(status.get('gaps', [])), 'gap')}"
    )


def _print_alert(out: Output, alert) -> None:
    data = alert.data
    if out.json:
        out.emit_json_line(alert.to_dict())
        return
    if data["kind"] == "open":
        out.print(
            f"{data['start_utc']}  ALERT  {data['question']}  (event {data['event']}, from {data['start']:.1f} s, "
            f"P(yes) {data['score']:.2f}{', ' + repr(data['answer']) if data.get('answer') else ''})"
        )
    else:
        out.print(
            f"{data['end_utc']}  ended  {data['question']}  (event {data['event']}, "
            f"{data['start']:.1f}–{data['end']:.1f} s)"
        )


@alerts_app.command("ls")
def alerts_ls(
    ctx: typer.Context,
    stream: Annotated[str | None, typer.Argument(help="a stream id [default: every stream]")] = None,
    last: Annotated[int, typer.Option("--last", help="how many of each stream's newest alerts")] = 20,
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """List recent alerts."""
    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    store = _alerts(redis_url)
    found = [a for s in ([stream] if stream else store.streams()) for a in store.last_alerts(s, count=last)]
    if out.json:
        out.emit_json([a.to_dict() for a in found])
        return
    if not found:
        out.note("no alerts")
    for item in found:
        _print_alert(out, item)


@alerts_app.command("tail")
def alerts_tail(
    ctx: typer.Context,
    stream: Annotated[str | None, typer.Argument(help="a stream id [default: every stream]")] = None,
    redis_url: options.RedisUrl = None,
    json: Annotated[bool, typer.Option("--json", help="one JSON line per alert")] = False,
    debug: options.Debug = False,
) -> None:
    """Follow alerts as they come, until Ctrl-C."""
    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    store = _alerts(redis_url)
    cursors = {s: "$" for s in ([stream] if stream else store.streams())}
    try:
        while True:
            if not stream:  # streams that raise their first alert while we follow
                cursors |= {s: "0-0" for s in store.streams() if s not in cursors}
            for item in store.wait(cursors, timeout_s=1.0):
                cursors[item.stream_id] = item.alert_id
                _print_alert(out, item)
            time.sleep(0 if cursors else 1.0)
    except KeyboardInterrupt:
        return


@streams_app.command("ls")
def streams_ls(
    ctx: typer.Context, redis_url: options.RedisUrl = None, json: options.Json = False, debug: options.Debug = False
) -> None:
    """List live streams: status, windows, lag, reconnects, watches."""
    from heron.state import RedisConnection, StreamStore, ensure_redis

    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    store = StreamStore(RedisConnection(ensure_redis(redis_url)))
    records = [store.get(s) for s in store.ids()]
    records = [r for r in records if r is not None]
    if out.json:
        out.emit_json(records)
        return
    if not records:
        out.note("no live streams")
    for record in records:
        watches = store.watches(record["id"])
        out.print(
            f"{record['id']}  {record['spec'].get('uri', '?')}  {record['status']}  "
            f"{plural(record['windows'], 'window')}  {plural(len(watches), 'watch', 'watches')}"
        )


def _alerts(redis_url: str | None):
    from heron.state import AlertStore, RedisConnection, ensure_redis

    return AlertStore(RedisConnection(ensure_redis(redis_url)))
