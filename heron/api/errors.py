"""Errors over HTTP: every error is JSON ``{"error": {"type", "message"}}`` with the right status.

Heron's own errors map by kind (a missing file is 404, a dead Redis 503, a bad value 400); the
API's own refusals are typed here; anything unexpected is a 500 whose message names no internals.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from heron import errors

log = logging.getLogger(__name__)


class ApiError(errors.HeronError):
    """A request the API refuses; ``status`` is its HTTP status."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.headers = headers or {}


class Unauthorized(ApiError):
    status = 401


class NotAllowed(ApiError):
    """A path outside the allowed roots, a URL to a private address, a scheme not allowed."""

    status = 400


class NotFound(ApiError):
    status = 404


class TooLarge(ApiError):
    status = 413


class TooManyRequests(ApiError):
    status = 429


class Unavailable(ApiError):
    status = 503


# Heron's errors by kind; the first class in the error's MRO that is listed decides.
_STATUS: dict[type, int] = {
    ApiError: 400,
    errors.SourceNotFoundError: 404,
    errors.StreamNotFoundError: 404,
    errors.JobNotFoundError: 404,
    errors.StateUnavailableError: 503,
    errors.ClusterResourcesError: 503,
    errors.ActorStartTimeoutError: 503,
    errors.IngestTimeoutError: 503,
    errors.PromptTooLongError: 413,
    errors.ResolutionError: 413,
    errors.HeronError: 400,
}


def status_of(error: BaseException) -> int:
    if isinstance(error, ApiError):
        return error.status
    for kind in type(error).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 500


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def install(app) -> None:
    """Exception handlers that turn every failure into the JSON error body."""

    @app.exception_handler(errors.HeronError)
    async def heron_error(request: Request, error: errors.HeronError):
        request.state.error_type = type(error).__name__
        return error_response(status_of(error), type(error).__name__, str(error), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        if any(e.get("type") == "json_invalid" for e in error.errors()):
            return error_response(400, "InvalidJSON", "the request body is not valid JSON")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in error.errors()[:10]
        )
        return error_response(422, "ValidationError", problems or "the request body is invalid")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(error.status_code, "HTTPError")
        return error_response(error.status_code, kind, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        if _is_ray_unavailable(error):
            return error_response(
                503, "Unavailable", f"the Ray cluster is not answering ({type(error).__name__}); retry once it is back"
            )
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "InternalError", "an internal error occurred; the service log has the details")


def _is_ray_unavailable(error: Exception) -> bool:
    try:
        import ray.exceptions as ray_errors
    except ImportError:
        return False
    return isinstance(
        error,
        (
            ray_errors.RayActorError,
            ray_errors.RaySystemError,
            ray_errors.GetTimeoutError,
            ray_errors.ActorUnavailableError,
            ConnectionError,
        ),
    )
