"""The FastAPI application: routes, auth, limits, metrics and the warm Heron behind them.

    app = create_app(lambda: Heron(cfg), ServeConfig(), api_key=os.environ.get("HERON_API_KEY"))

The Heron is built when the app starts (its model loads before ``/ready`` says yes) and closed
when it stops, after in-flight requests finish (uvicorn's graceful shutdown). OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from heron import __version__
from heron.api import batch_routes, errors, live_routes, native_routes, openai_routes, ops_routes
from heron.api.security import check_token
from heron.api.service import ApiService
from heron.config import ServeConfig
from heron.errors import StateStoreError
from heron.service import Heron

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health", "/ready", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")
UNLIMITED_PATHS = (*OPEN_PATHS, "/metrics")


def create_app(
    make_heron: Callable[[], Heron],
    cfg: ServeConfig,
    *,
    api_key: str | None = None,
    upload_dir: Path | None = None,
    model_id: str = "heron",
) -> FastAPI:
    from heron.api.media import default_upload_dir

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        heron = await run_in_threadpool(make_heron)
        service = ApiService(
            heron, cfg, Path(upload_dir or cfg.upload_dir or default_upload_dir()), api_key=api_key, model_id=model_id
        )
        app.state.service = service
        warm = threading.Thread(target=_warm, args=(service,), name="heron-warm-up", daemon=True)
        warm.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="Heron",
        version=__version__,
        lifespan=lifespan,
        description="Ask questions about video: OpenAI-compatible chat with video, Heron's own "
        "sources/jobs/ask/sessions routes, health and metrics (docs/serve.md).",
    )
    errors.install(app)
    app.include_router(openai_routes.router)
    app.include_router(native_routes.router)
    app.include_router(live_routes.router)
    app.include_router(batch_routes.router)
    app.include_router(ops_routes.router)

    app.add_middleware(Guard)
    return app


class Guard:
    """Auth, the concurrency limit and request metrics around every HTTP request (pure ASGI, so a
    streamed answer holds its slot until its last byte is sent)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        service: ApiService | None = getattr(scope["app"].state, "service", None)
        if service is None:
            return await errors.error_response(503, "Unavailable", "the service is starting")(scope, receive, send)
        path, method, clock = scope["path"], scope["method"], time.perf_counter()
        limited = path not in UNLIMITED_PATHS
        try:
            if path not in OPEN_PATHS:
                check_token(Request(scope).headers.get("authorization"), service.api_key)
            if limited:
                service.acquire()
        except errors.ApiError as refused:
            _count(service, scope, method, refused.status, clock)
            response = errors.error_response(refused.status, type(refused).__name__, str(refused), refused.headers)
            return await response(scope, receive, send)
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        service.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            service.metrics.in_flight.dec()
            if limited:
                service.release()
            if scope.get("state", {}).get("error_type", "").startswith("State"):
                service.metrics.redis_errors.inc()
            _count(service, scope, method, status, clock)


def _count(service: ApiService, scope, method: str, status: int, clock: float) -> None:
    route = getattr(scope.get("route"), "path", "unmatched")
    service.metrics.requests.labels(route, method, str(status)).inc()
    service.metrics.latency.labels(route, method).observe(time.perf_counter() - clock)


def _warm(service: ApiService) -> None:
    try:
        service.warm_up()
    except StateStoreError as error:
        log.error("Heron could not warm up (%s); /ready stays 503 until a request succeeds", error)
    except Exception:
        log.exception("Heron could not warm up; /ready stays 503")
