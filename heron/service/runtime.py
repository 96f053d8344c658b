"""Ray for the service: join or start it once per process, and unwrap Heron's errors from its replies."""

from __future__ import annotations

import logging
import os

import ray

from heron.errors import HeronError


def init_ray(address: str | None = None) -> None:
    """Join ``address`` / ``$RAY_ADDRESS`` if given, else start a local Ray (once per process)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(
        address=address,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=False,
    )


def get(ref, *, timeout_s: float | None = None):
    """``ray.get`` that re-raises Heron's own errors as themselves, not wrapped in RayTaskError."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, HeronError):
            raise error.cause from None
        raise
