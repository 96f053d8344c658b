"""Operations: ``GET /health`` (the process is alive), ``GET /ready`` (Redis, Ray and the answer
actor answer; 503 with what is not), ``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from heron.api.service import ApiService

router = APIRouter(tags=["Operations"])


@router.get("/health")
def health() -> dict:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    service: ApiService = request.app.state.service
    checks = await run_in_threadpool(service.heron.healthy)
    checks["model_loaded"] = service.ready.is_set()
    ok = all(checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    service: ApiService = request.app.state.service
    try:
        stats = await run_in_threadpool(service.heron.answer_stats)
        service.metrics.queue_depth.set(stats.get("waiting", 0))
    except Exception:  # metrics must render even while the actor restarts
        pass
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
