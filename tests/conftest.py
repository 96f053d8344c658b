"""Shared fixtures: one real Redis per test session; per test, stores whose keys live in a private namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from heron.state import AlertStore, DialogueStore, JobStore, LatentStore, RedisConnection, ThrowawayRedis

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
def namespace() -> str:
    """A key namespace of this test's own, so even a shared server is safe."""
    return f"heron-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db(redis_url: str, namespace: str) -> Iterator[RedisConnection]:
    """The connection every store of a test shares; its namespace is cleared after the test."""
    connection = RedisConnection(redis_url, namespace=namespace)
    yield connection
    connection.clear_all()


@pytest.fixture
def latents(db: RedisConnection) -> LatentStore:
    return LatentStore(db, TEST_ENCODER_SETTINGS)


@pytest.fixture
def dialogue(db: RedisConnection) -> DialogueStore:
    return DialogueStore(db)


@pytest.fixture
def jobs(db: RedisConnection) -> JobStore:
    return JobStore(db)


@pytest.fixture
def alerts(db: RedisConnection) -> AlertStore:
    return AlertStore(db)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (starting it costs seconds)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory) -> str:
    """10 s of a red square crossing the frame, 8 fps, 64x48."""
    from heron.data.video_writer import write_video

    from .media import moving_square_frames

    path = tmp_path_factory.mktemp("videos") / "square.mp4"
    return str(write_video(path, moving_square_frames(), fps=8))
