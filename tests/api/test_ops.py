"""Health, readiness, metrics; a Redis killed while serving is 503, and the service recovers."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_health_ready_and_metrics(server):
    with server.client() as http:
        assert http.get("/health").json() == {"status": "ok"}
        ready = http.get("/ready").json()
        assert ready["status"] == "ready" and all(ready["checks"].values())
        http.post("/v1/ask", json={"source": str(server.videos / "square.mp4"), "question": "What moves?"})
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "tiny",
                "stream": True,
                "max_tokens": 3,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "video_url", "video_url": {"url": str(server.videos / "square.mp4")}},
                            {"type": "text", "text": "What?"},
                        ],
                    }
                ],
            },
        ) as response:
            response.read()
        text = http.get("/metrics").text
    for name in (
        "heron_requests_total",
        "heron_request_seconds_bucket",
        "heron_time_to_first_token_seconds_count",
        "heron_generated_tokens_total",
        "heron_generation_tokens_per_second_count",
        "heron_cache_lookups_total",
        "heron_ingest_frames_total",
        "heron_requests_in_flight",
        "heron_answer_queue_depth",
        "heron_redis_errors_total",
    ):
        assert name in text, name
    assert 'route="/v1/ask",status="200"' in text
    assert "docs" in httpx.get(f"{server.url}/docs").text.lower()  # OpenAPI docs
