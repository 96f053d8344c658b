"""Ray for the service: join or start it once per process."""

from __future__ import annotations

import logging
import os

import ray


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
