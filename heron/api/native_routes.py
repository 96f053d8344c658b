"""Heron's own routes: sources (ingest jobs with progress), questions (with an SSE variant), sessions.

POST   /v1/sources            {"url" | "path"} or a raw video body → 202 + the ingest job
GET    /v1/sources            every cached source;  DELETE /v1/sources/{source_id}
GET    /v1/jobs/{job_id}      status, progress 0..1, the ingest report or the error
POST   /v1/ask                {"source" | "source_id", "question", "from", "to", "session", "stream"}
GET    /v1/sessions/{id}      the dialogue;  DELETE /v1/sessions/{id}
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from heron.api.errors import NotAllowed, NotFound
from heron.api.service import ApiService
from heron.pipeline.answer import AnswerRequest, check_question
from heron.pipeline.windows import check_time_range
from heron.service.reports import AskResult

router = APIRouter(tags=["Heron"])


class SourceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    url: str | None = Field(None, description="http(s) URL, or a data:video/...;base64, upload")
    path: str | None = Field(None, description="a local path under the service's allowed roots")
    start: float | None = Field(None, alias="from")
    end: float | None = Field(None, alias="to")


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str | None = Field(None, description="URL, data: upload or allowed local path")
    source_id: str | None = Field(None, description="a source already ingested (POST /v1/sources)")
    question: str
    start: float | None = Field(None, alias="from", description="start of the time range, s")
    end: float | None = Field(None, alias="to", description="end of the time range, s")
    session: str | None = Field(None, description="continue this dialogue session")
    last: float | None = Field(None, gt=0, description="a live stream (its URL or id): its last N seconds")
    max_tokens: int | None = Field(None, ge=1)
    stream: bool = False


def _service(request: Request) -> ApiService:
    return request.app.state.service


@router.post("/v1/sources", status_code=202)
async def add_source(request: Request) -> JSONResponse:
    """Ingest a source in the background; the job reports progress (``GET /v1/jobs/{id}``)."""
    from starlette.concurrency import run_in_threadpool

    service = _service(request)
    if (
        request.headers.get("content-type", "")
        .split(";")[0]
        .strip()
        .startswith(("video/", "image/", "application/octet-stream"))
    ):
        path = await _save_body(request, service)
        start = end = None
    else:
        body = SourceBody.model_validate(await request.json())
        if (body.url is None) == (body.path is None):
            raise NotAllowed("give exactly one of url and path (or send the video as the request body)")
        start, end = check_time_range(body.start, body.end)
        path = await run_in_threadpool(service.media.resolve, body.url or body.path)
    job = await run_in_threadpool(service.ingest_jobs.submit, path, start=start, end=end)
    return JSONResponse({"job": job.to_dict(), "source_id": _content_id(path)}, status_code=202)


async def _save_body(request: Request, service: ApiService) -> str:
    from starlette.concurrency import run_in_threadpool

    chunks = []
    size, limit = 0, service.media.upload_limit
    async for chunk in request.stream():  # counted as it arrives: a huge body is refused early
        size += len(chunk)
        if size > limit:
            from heron.api.errors import TooLarge

            raise TooLarge(f"the upload is beyond the {service.cfg.max_upload_mb:g} MB limit")
        chunks.append(chunk)
    suffix = "." + request.headers.get("content-type", "video/mp4").split("/")[-1].split(";")[0][:5]
    return await run_in_threadpool(service.media.save_upload, chunks, f"upload{suffix}")


def _content_id(path: str) -> str | None:
    from heron.pipeline.sources import content_id

    return None if "://" in path else content_id(path)


@router.get("/v1/sources")
def list_sources(request: Request) -> dict:
    """Every cached source, whatever model encoded it."""
    return {"data": [dataclasses.asdict(info) for info in _service(request).heron.latents.every_source()]}


@router.delete("/v1/sources/{source_id}")
def delete_source(source_id: str, request: Request) -> dict:
    latents = _service(request).heron.latents
    infos = [info for info in latents.every_source() if info.source_id == source_id]
    if not infos:
        raise NotFound(f"no cached source {source_id!r}")
    keys = sum(latents.with_settings(info.settings).clear_source(source_id) for info in infos)
    return {"deleted": source_id, "keys": keys}


@router.get("/v1/jobs/{job_id}")
def get_job(job_id: str, request: Request) -> dict:
    return _service(request).job(job_id).to_dict()


@router.post("/v1/ask", response_model=None)
def ask(body: AskBody, request: Request):
    """A question about a source's time range; ``stream: true`` for Server-Sent Events."""
    service = _service(request)
    question = service.check_text(check_question(body.question))
    start, end = check_time_range(body.start, body.end)
    options = {"max_new_tokens": service.max_tokens(body.max_tokens)}
    if body.source_id is not None:
        if body.source is not None:
            raise NotAllowed("give source or source_id, not both")
        request_ = AnswerRequest.about(
            question,
            body.source_id,
            start=start or 0.0,
            end=end if end is not None else math.inf,
            session_id=body.session,
            **options,
        )
        if body.stream:
            return _sse(_events(service.heron.answer_stream(request_)))  # noqa: the priming raises before 200
        return _with_fps(service, _answer_dict(service.heron.answer(request_)))
    if body.source is None:
        raise NotAllowed("give source (a URL, upload or path) or source_id")
    if body.last is not None:  # a live stream: answered from the windows its stream actor cached
        options["last_s"] = body.last
        source = body.source
    else:
        source = service.media.resolve(body.source)
    if body.stream:
        return _sse(
            _events(
                service.heron.ask_stream(source, question, start=start, end=end, session_id=body.session, **options),
                service,
            )
        )
    result = service.heron.ask(source, question, start=start, end=end, session_id=body.session, **options)
    service.metrics.observe_ingest(result.ingest)
    service.metrics.observe_answer(result.answer)
    return _with_fps(service, result.to_dict())


def _answer_dict(answer) -> dict:
    return {
        "answer": answer.text,
        "spans": [[round(a, 3), round(b, 3)] for a, b in answer.spans],
        "session": answer.session_id,
        "source_id": answer.source_id,
        "warnings": answer.warnings,
        "evidence": [[round(a, 3), round(b, 3)] for a, b in answer.evidence],
        "when": None if answer.when is None else [round(t, 3) for t in answer.when],
    }


def _with_fps(service: ApiService, body: dict) -> dict:
    return {**body, "fps": service.heron.cfg.decode.fps}


def _events(items, service: ApiService | None = None) -> Iterator[bytes]:
    """``event: token`` per text delta, then ``event: answer`` (or ``event: error``).

    The first item is taken before the response starts (``primed``), so early failures raise."""
    items = primed(iter(items))
    try:
        for item in items:
            if isinstance(item, str):
                yield f"event: token\ndata: {json.dumps({'text': item})}\n\n".encode()
            else:
                if isinstance(item, AskResult):
                    if service is not None:
                        service.metrics.observe_ingest(item.ingest)
                    payload = item.to_dict()
                else:
                    payload = _answer_dict(item)
                yield f"event: answer\ndata: {json.dumps(payload)}\n\n".encode()
    except Exception as error:
        from heron.api.errors import status_of

        error_body = {"type": type(error).__name__, "message": str(error), "status": status_of(error)}
        yield f"event: error\ndata: {json.dumps({'error': error_body})}\n\n".encode()


def _sse(events: Iterator[bytes]) -> StreamingResponse:
    return StreamingResponse(primed(events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def primed(items: Iterator):
    """``items`` with its first element already taken: what fails before the first token (a bad
    source, a dead Redis) is an HTTP error with its status, not an event after a 200."""
    first = next(items, None)

    def rest():
        if first is not None:
            yield first
        yield from items

    return rest()


@router.get("/v1/sessions/{session_id}")
def get_session(session_id: str, request: Request) -> dict:
    turns = _service(request).heron.dialogue.get_dialogue(session_id)
    if not turns:
        raise NotFound(f"no session {session_id!r}")
    return {"id": session_id, "turns": [dataclasses.asdict(t) for t in turns]}


@router.delete("/v1/sessions/{session_id}")
def delete_session(session_id: str, request: Request) -> dict:
    if not _service(request).heron.dialogue.clear_session(session_id):
        raise NotFound(f"no session {session_id!r}")
    return {"deleted": session_id}
