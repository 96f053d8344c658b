"""Waiting on Ray calls: Heron's own errors come back as themselves, not wrapped in RayTaskError."""

from __future__ import annotations

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
