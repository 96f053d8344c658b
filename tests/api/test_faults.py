"""A Redis killed while serving is 503 at once and the service recovers; shutdown lets requests finish.

Its own server (over a Redis this module kills), in a module of its own so that no other test
server holds the CPUs its actors need.
"""

from __future__ import annotations

import threading
import time

import pytest

from heron.config import ServeConfig, load_pipeline_config
from heron.service import Heron
from tests.faults.redis_process import RedisProcess

from .conftest import API_KEY, start_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fragile(ray_session, tmp_path_factory, videos):
    """A server over a Redis this test can kill."""
    redis_server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    cfg = ServeConfig(port=0, allow_paths=[str(videos)])
    pipeline = load_pipeline_config("tiny")
    running = start_server(
        cfg,
        lambda: Heron(pipeline, redis_url=redis_server.url, progress=False),
        api_key=API_KEY,
        upload_dir=tmp_path_factory.mktemp("uploads"),
        videos=videos,
    )
    yield running, redis_server
    running.stop()
    redis_server.stop()


def test_redis_down_is_503_fast_and_the_service_recovers(fragile):
    running, redis_server = fragile
    ask = {"source": str(running.videos / "square.mp4"), "question": "What moves?"}
    with running.client() as http:
        assert http.post("/v1/ask", json=ask).status_code == 200
        redis_server.kill()
        started = time.monotonic()
        down = http.post("/v1/ask", json=ask)
        assert down.status_code == 503 and down.json()["error"]["type"] == "StateUnavailableError"
        assert time.monotonic() - started < 15  # fails fast, never hangs
        ready = http.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
        redis_server.start()
        deadline = time.monotonic() + 30
        while http.post("/v1/ask", json=ask).status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover after Redis came back"
            time.sleep(0.5)
        assert http.get("/ready").status_code == 200
        errors = [
            line for line in http.get("/metrics").text.splitlines() if line.startswith("heron_redis_errors_total")
        ]
        assert errors and float(errors[0].split()[-1]) >= 1


def test_shutdown_lets_an_in_flight_request_finish(fragile):
    running, _ = fragile
    results = {}

    def ask():
        with running.client() as http:
            results["response"] = http.post(
                "/v1/ask", json={"source": str(running.videos / "short.mp4"), "question": "What moves?"}
            )

    thread = threading.Thread(target=ask)
    thread.start()
    time.sleep(0.3)  # the request is in flight (a fresh video: it decodes and encodes first)
    running.stop()  # graceful: stops accepting, waits for the request, then closes the Heron
    thread.join(timeout=60)
    assert results["response"].status_code == 200 and results["response"].json()["answer"] is not None
