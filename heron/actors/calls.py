"""Waiting on Ray calls: Heron's own errors come back as themselves, not wrapped in RayTaskError."""

from __future__ import annotations

from concurrent.futures import Future

import ray

from heron.errors import HeronError


def get(ref, *, timeout_s: float | None = None):
    """``ray.get`` that re-raises Heron's own errors as themselves, not wrapped in RayTaskError."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, HeronError):
            raise error.cause from None
        raise


def future_of(ref) -> Future:
    """A ``concurrent.futures.Future`` of a Ray call, whose Heron errors are raised as themselves."""
    unwrapped: Future = Future()

    def done(ray_future: Future) -> None:
        error = ray_future.exception()
        if error is None:
            unwrapped.set_result(ray_future.result())
        elif isinstance(error, ray.exceptions.RayTaskError) and isinstance(error.cause, HeronError):
            unwrapped.set_exception(error.cause)
        else:
            unwrapped.set_exception(error)

    ref.future().add_done_callback(done)
    return unwrapped
