"""Live streams over HTTP: create, list, inspect, stop streams; add and remove their watches; alerts.

POST   /v1/streams                     {"source", "name"?, "realtime"?, "watches": [...]} → the stream
GET    /v1/streams, /v1/streams/{id}   status: lag, frames/s, windows, reconnects, gaps, watches
DELETE /v1/streams/{id}                stop reading (windows, watches and alerts stay); ?forget=true deletes
POST   /v1/streams/{id}/watches        {"question", "every", "threshold", "cooldown_s", "examples", "webhook"}
DELETE /v1/streams/{id}/watches/{wid}
GET    /v1/streams/{id}/alerts         the newest alerts;  GET /v1/alerts/events (SSE, ?stream=)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from heron.api.errors import NotFound
from heron.api.service import ApiService
from heron.errors import StreamNotFoundError

router = APIRouter(tags=["Live streams"])


class ExampleBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    label: str = Field(pattern="^(yes|no)$")
    source: str = Field(description="URL, data: upload or allowed path of the example clip")
    start: float | None = Field(None, alias="from")
    end: float | None = Field(None, alias="to")


class WatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    id: str | None = Field(None, pattern=r"^[\w.-]{1,64}$")
    every: int | None = Field(None, ge=1)
    threshold: float | None = Field(None, gt=0, lt=1)
    cooldown_s: float | None = Field(None, ge=0)
    examples: list[ExampleBody] = Field(default_factory=list, max_length=16)
    webhook: str | None = None
    webhook_secret: str | None = None


class StreamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="rtsp://, http(s):// (TS, FLV, MJPEG, HLS) or an allowed file (with realtime)")
    name: str | None = Field(None, pattern=r"^[\w.-]{1,64}$")
    realtime: bool = False
    watches: list[WatchBody] = Field(default_factory=list, max_length=64)


def _service(request: Request) -> ApiService:
    return request.app.state.service


def _watch(service: ApiService, body: WatchBody):
    service.check_text(body.question)
    if body.webhook:
        service.media.policy.check_url(body.webhook)  # the same SSRF rules as media URLs
    examples = [(e.label, service.media.resolve(e.source), e.start, e.end) for e in body.examples]
    return service.heron.streams.make_watch(
        body.question,
        watch_id=body.id,
        every=body.every,
        threshold=body.threshold,
        cooldown_s=body.cooldown_s,
        examples=examples,
        webhook=body.webhook,
        webhook_secret=body.webhook_secret,
    )


def _source(service: ApiService, body: StreamBody) -> str:
    if "://" in body.source:
        service.media.policy.check_url(body.source)
        return body.source
    return str(service.media.policy.local_path(body.source))  # a file played in real time


@router.post("/v1/streams", status_code=201)
def create_stream(body: StreamBody, request: Request) -> dict:
    service = _service(request)
    watches = [_watch(service, w) for w in body.watches]
    stream_id = service.heron.streams.start(
        _source(service, body), stream_id=body.name, realtime=body.realtime, watches=watches
    )
    service.start_webhooks()
    return service.heron.streams.status(stream_id)


@router.get("/v1/streams")
def list_streams(request: Request) -> dict:
    return {"data": _service(request).heron.streams.list()}


@router.get("/v1/streams/{stream_id}")
def get_stream(stream_id: str, request: Request) -> dict:
    return _found(lambda: _service(request).heron.streams.status(stream_id))


@router.delete("/v1/streams/{stream_id}")
def stop_stream(stream_id: str, request: Request, forget: bool = False) -> dict:
    streams = _service(request).heron.streams
    if forget:
        _found(lambda: streams.forget(stream_id))
        return {"forgotten": stream_id}
    return {"stopped": stream_id, "was_running": _found(lambda: streams.stop(stream_id))}


@router.post("/v1/streams/{stream_id}/watches", status_code=201)
def add_watch(stream_id: str, body: WatchBody, request: Request) -> dict:
    service = _service(request)
    _found(lambda: service.heron.streams.status(stream_id))
    watch = service.heron.streams.add_watch(stream_id, _watch(service, body))
    service.start_webhooks()
    return watch.to_dict()


@router.delete("/v1/streams/{stream_id}/watches/{watch_id}")
def remove_watch(stream_id: str, watch_id: str, request: Request) -> dict:
    if not _service(request).heron.streams.remove_watch(stream_id, watch_id):
        raise NotFound(f"stream {stream_id!r} has no watch {watch_id!r}")
    return {"removed": watch_id}


@router.get("/v1/streams/{stream_id}/alerts")
def stream_alerts(stream_id: str, request: Request, count: int = 50) -> dict:
    service = _service(request)
    _found(lambda: service.heron.streams.status(stream_id))
    return {"data": [a.to_dict() for a in service.heron.alerts.last_alerts(stream_id, count=min(count, 1000))]}


@router.get("/v1/alerts/events")
def alert_events(request: Request, stream: str | None = None) -> StreamingResponse:
    """Server-Sent Events: ``event: alert`` for each new alert (of one stream, or of all)."""
    alerts = _service(request).heron.alerts

    def events() -> Iterator[bytes]:
        cursors = {s: "$" for s in ([stream] if stream else alerts.streams())}
        yield b": subscribed\n\n"
        while True:
            if not stream:
                cursors |= {s: "0-0" for s in alerts.streams() if s not in cursors}
            found = alerts.wait(cursors, timeout_s=5.0) if cursors else []
            for item in found:
                cursors[item.stream_id] = item.alert_id
                yield f"event: alert\nid: {item.alert_id}\ndata: {json.dumps(item.to_dict())}\n\n".encode()
            if not found:
                yield b": keep-alive\n\n"  # a closed client is noticed on the next write

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _found(call):
    try:
        return call()
    except StreamNotFoundError as error:
        raise NotFound(str(error)) from None
