"""Shared fixtures: one real Redis per test session, a store with private keys per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from heron.pipeline.redis_server import ThrowawayRedis
from heron.pipeline.store import RedisStateStore

# `make test` may point this at a running server; tests then use their own key namespace on it.
TEST_REDIS_URL_ENV = "HERON_TEST_REDIS_URL"
TEST_ENCODER_SETTINGS = {"model_id": "tiny-test", "fps": 1.0, "window_frames": 4}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis for the whole session: ``$HERON_TEST_REDIS_URL`` or a throwaway server."""
    external = os.environ.get(TEST_REDIS_URL_ENV)
    if external:
        yield external
        return
    with ThrowawayRedis() as server:
        yield server.url


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStateStore]:
    """A store whose keys live in a namespace of its own (so even a shared server is safe), cleared after."""
    state = RedisStateStore(
        redis_url, encoder_settings=TEST_ENCODER_SETTINGS, namespace=f"heron-test-{uuid.uuid4().hex[:12]}"
    )
    yield state
    state.clear_all()
