"""Batch routes: many videos x many questions as a resumable job (docs/batch.md).

POST   /v1/batches                {"videos": [...] | "input": "dir, glob or manifest on the server",
                                   "questions": [...], "from", "to", "job"} → 202 + the job
GET    /v1/batches                batch jobs, newest first
GET    /v1/batches/{id}           status, counts (done, failed, pending), the summary when finished
GET    /v1/batches/{id}/results   the committed rows, in input order (``?format=jsonl`` for JSON Lines)
DELETE /v1/batches/{id}           cancel: it stops after the videos in flight (POST it again to resume)

Videos are URLs (fetched by the guarded fetcher, one at a time as the batch reaches them) or
paths under the service's allowed roots; every one is checked against the policy before the job
is created, so a refused reference is a 400, not a failed row.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from heron.api.errors import NotAllowed
from heron.api.service import ApiService
from heron.errors import JobNotFoundError
from heron.pipeline.inputs import build_items, read_inputs
from heron.state import ResultStore

router = APIRouter(tags=["Batches"])

MAX_ITEMS = 100_000  # (video, question) pairs in one request


class BatchVideo(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    video: str = Field(description="an http(s) URL or a path under the allowed roots")
    questions: list[str] = Field(default_factory=list, description="its own questions [default: the batch's]")
    start: float | None = Field(None, alias="from")
    end: float | None = Field(None, alias="to")


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    videos: list[BatchVideo | str] | None = Field(None, description="the videos (or give input)")
    input: str | None = Field(None, description="a directory, glob or manifest under the allowed roots")
    questions: list[str] = Field(default_factory=list, description="asked of every video with none of its own")
    start: float | None = Field(None, alias="from")
    end: float | None = Field(None, alias="to")
    job: str | None = Field(None, max_length=200, description="the job id [default: derived from what it asks]")


def _service(request: Request) -> ApiService:
    return request.app.state.service


@router.post("/v1/batches", status_code=202)
async def create_batch(body: BatchBody, request: Request) -> JSONResponse:
    """Start (or resume, with the same ``job``) a batch in the background; 202 with its job."""
    service = _service(request)
    if (body.videos is None) == (body.input is None):
        raise NotAllowed("give exactly one of videos and input")
    for question in body.questions:
        service.check_text(question)
    items = await run_in_threadpool(_items, service, body)
    if len(items) > MAX_ITEMS:
        raise NotAllowed(f"{len(items)} (video, question) pairs; at most {MAX_ITEMS} per batch")
    job = await run_in_threadpool(service.batch_jobs.submit, items, job_id=body.job, resolve=service.media.resolve)
    return JSONResponse({"job": job.to_dict()}, status_code=202)


def _items(service: ApiService, body: BatchBody):
    policy = service.media.policy
    if body.input is not None:
        return read_inputs(str(policy.local_path(body.input)), body.questions, start=body.start, end=body.end)
    rows = []
    for entry in body.videos:
        video = BatchVideo(video=entry) if isinstance(entry, str) else entry
        if "://" in video.video:
            policy.check_url(video.video)
        else:
            policy.local_path(video.video)
        rows.append((video.video, [service.check_text(q) for q in video.questions], video.start, video.end))
    if not rows:
        raise NotAllowed("videos is empty")
    return build_items(rows, body.questions, start=body.start, end=body.end)


@router.get("/v1/batches")
def list_batches(request: Request, limit: int = 100) -> dict:
    return {"data": [job.to_dict() for job in _service(request).jobs.list_jobs(kind="batch", limit=limit)]}


@router.get("/v1/batches/{job_id}")
def get_batch(job_id: str, request: Request) -> dict:
    return _batch(_service(request), job_id).to_dict()


@router.get("/v1/batches/{job_id}/results", response_model=None)
def batch_results(job_id: str, request: Request, format: str = "json") -> Response | dict:
    service = _service(request)
    _batch(service, job_id)
    rows = ResultStore(service.heron.db).rows(job_id)
    if format == "jsonl":
        body = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        return Response(body, media_type="application/x-ndjson")
    if format != "json":
        raise NotAllowed(f"format must be json or jsonl, got {format!r}")
    return {"data": rows}


@router.delete("/v1/batches/{job_id}")
def cancel_batch(job_id: str, request: Request) -> dict:
    service = _service(request)
    _batch(service, job_id)
    return service.batch_jobs.cancel(job_id).to_dict()


def _batch(service: ApiService, job_id: str):
    job = service.jobs.get_job(job_id)
    if job is None or job.kind != "batch":
        raise JobNotFoundError(f"no batch {job_id!r}")
    return job
