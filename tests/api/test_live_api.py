"""Live streams over HTTP: create, inspect, watch, stop; alerts listed, pushed over SSE and to webhooks."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time

import httpx
import pytest

from tests.live.conftest import scene

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clip(server):
    return scene(server.videos / "live.mp4", 6, [(2.0, 4.0)], size=32)


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.2 (allow-listed by the test server) that fails its first POST."""
    got: list[tuple[dict, bytes]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(500 if len(got) == 1 else 200)  # the first delivery fails: it must be retried
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Hook)
    threading.Thread(target=hook.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.2:{hook.server_address[1]}/hook", got
    hook.shutdown()
    hook.server_close()


def test_a_stream_is_created_inspected_watched_and_stopped(server, clip, receiver):
    url, got = receiver
    with server.client() as http_client:
        created = http_client.post(
            "/v1/streams",
            json={
                "source": str(clip),
                "realtime": True,
                "name": "cam-api",
                "watches": [
                    {
                        "id": "red",
                        "question": "Is there a red square?",
                        "cooldown_s": 1,
                        "webhook": url,
                        "webhook_secret": "hook-secret",
                    }
                ],
            },
        )
        assert created.status_code == 201, created.text
        stream = created.json()
        assert stream["id"] == "cam-api" and stream["watches"][0]["webhook_signed"]
        assert "webhook_secret" not in json.dumps(stream)  # stored, never shown
        added = http_client.post(
            "/v1/streams/cam-api/watches", json={"question": "Is there a blue circle?", "id": "blue"}
        )
        assert added.status_code == 201
        assert {w["watch_id"] for w in http_client.get("/v1/streams/cam-api").json()["watches"]} == {"red", "blue"}
        assert http_client.delete("/v1/streams/cam-api/watches/blue").status_code == 200
        assert http_client.delete("/v1/streams/cam-api/watches/blue").status_code == 404

        # an alert of the webhook watch: delivered (after one failed try), signed, with an idempotency key
        alert_id = server.service.heron.alerts.push_alert("cam-api", {"watch": "red", "kind": "open", "event": 9})
        deadline = time.monotonic() + 20
        while len(got) < 2:
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        headers, body = got[-1]
        assert (
            headers["Idempotency-Key"] == f"cam-api:{alert_id}"
            and got[0][0]["Idempotency-Key"] == headers["Idempotency-Key"]
        )
        expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
        assert headers["X-Heron-Signature"] == expected and json.loads(body)["event"] == 9

        listed = http_client.get("/v1/streams/cam-api/alerts").json()["data"]
        assert any(a["id"] == alert_id for a in listed)
        metrics = http_client.get("/metrics").text
        assert 'heron_stream_alerts_total{stream="cam-api"}' in metrics and "heron_stream_lag_seconds" in metrics
        deadline = time.monotonic() + 30
        while http_client.get("/v1/streams/cam-api").json()["status"] != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert http_client.get("/v1/streams/cam-api").json()["windows"] >= 1
        stopped = http_client.delete("/v1/streams/cam-api", params={"forget": "true"})
        assert stopped.status_code == 200
        assert http_client.get("/v1/streams/cam-api").status_code == 404


def test_alerts_arrive_over_server_sent_events(server):
    heron = server.service.heron
    heron.streams.store.register("sse-cam", {"uri": "rtsp://example.invalid/live", "kind": "url"}, started_at=0)
    events = []

    def listen():
        with (
            httpx.Client(
                base_url=server.url, headers={"Authorization": "Bearer test-key-0123456789"}, timeout=30
            ) as client,
            client.stream("GET", "/v1/alerts/events", params={"stream": "sse-cam"}) as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(1.0)  # subscribed
    heron.alerts.push_alert("sse-cam", {"watch": "w", "kind": "open", "event": 1})
    thread.join(timeout=20)
    assert events and events[0]["stream"] == "sse-cam" and events[0]["kind"] == "open"


def test_stream_mistakes_are_typed_errors(server):
    with server.client() as http_client:
        assert http_client.get("/v1/streams/nope").status_code == 404
        refused = http_client.post("/v1/streams", json={"source": "rtsp://127.0.0.1:554/live"})
        assert refused.status_code == 400 and refused.json()["error"]["type"] == "NotAllowed"  # SSRF rules
        outside = http_client.post("/v1/streams", json={"source": "/etc/hostname", "realtime": True})
        assert outside.status_code == 400
        bad = http_client.post("/v1/streams", json={"source": "x", "watches": [{"question": "?", "threshold": 2}]})
        assert bad.status_code == 422
