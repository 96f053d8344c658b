"""Auth, limits, allow-lists and SSRF, each refused with its status and a JSON error."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

pytestmark = pytest.mark.integration


def _error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) == {"type", "message"} and error["message"]
    return error


def test_no_or_a_wrong_token_is_401(server):
    with server.client(key=None) as http:
        _error(http.get("/v1/models"), 401)
        assert http.get("/health").status_code == 200  # health and readiness stay open for orchestrators
    with server.client(key="wrong") as http:
        assert _error(http.post("/v1/ask", json={"question": "?"}), 401)["type"] == "Unauthorized"


def test_limits_are_413(server, tmp_path):
    with server.client() as http:
        long_question = {"source": str(server.videos / "square.mp4"), "question": "why? " * 200}
        _error(http.post("/v1/ask", json=long_question), 413)
        big = b"\0" * (6 * 10**6)  # the test server takes 5 MB
        _error(http.post("/v1/sources", content=big, headers={"Content-Type": "video/mp4"}), 413)
        _error(
            http.post(
                "/v1/ask", json={"source": str(server.videos / "square.mp4"), "question": "?", "max_tokens": 1000}
            ),
            413,
        )
    from heron.data.video_writer import write_video
    from tests.media import moving_square_frames

    long_video = server.videos / "long.mp4"
    write_video(long_video, moving_square_frames(seconds=62, fps=2), fps=2)  # the test server takes 60 s
    with server.client() as http:
        _error(http.post("/v1/ask", json={"source": str(long_video), "question": "?"}), 413)


def test_paths_outside_the_allowed_roots_are_refused(server, tmp_path):
    outside = tmp_path / "outside.mp4"
    outside.write_bytes((server.videos / "square.mp4").read_bytes())
    escape = server.videos / "escape.mp4"
    escape.unlink(missing_ok=True)
    escape.symlink_to(outside)
    with server.client() as http:
        for path in (
            str(outside),
            str(server.videos / ".." / outside.parent.name / "outside.mp4"),
            str(escape),
            "/etc/passwd",
        ):
            assert _error(http.post("/v1/ask", json={"source": path, "question": "?"}), 400)["type"] == "NotAllowed"


@pytest.fixture
def loopback_http(server):
    """A static file server on 127.0.0.1 and one on 127.0.0.2 (allow-listed) that redirects to it."""
    directory = str(server.videos)

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args):
            pass

    private = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    target = f"http://127.0.0.1:{private.server_address[1]}"

    class Redirect(Files):
        def do_GET(self):
            if self.path.startswith("/to-private"):
                self.send_response(302)
                self.send_header("Location", f"{target}/square.mp4")
                self.end_headers()
            else:
                super().do_GET()

    allowed = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Redirect)
    for s in (private, allowed):
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True).start()
    yield target, f"http://127.0.0.2:{allowed.server_address[1]}"
    for s in (private, allowed):
        s.shutdown()
        s.server_close()


def test_urls_to_private_addresses_are_refused_also_after_a_redirect(server, loopback_http):
    private, allowed = loopback_http
    with server.client() as http:
        refused = _error(http.post("/v1/ask", json={"source": f"{private}/square.mp4", "question": "?"}), 400)
        assert refused["type"] == "NotAllowed" and "127.0.0.1" in refused["message"]
        ok = http.post("/v1/ask", json={"source": f"{allowed}/square.mp4", "question": "?"})
        assert ok.status_code == 200, ok.text  # 127.0.0.2 is allow-listed
        redirected = _error(http.post("/v1/ask", json={"source": f"{allowed}/to-private", "question": "?"}), 400)
        assert "127.0.0.1" in redirected["message"]
        for url in ("ftp://example.com/a.mp4", "file:///etc/passwd", "gopher://x/"):
            assert _error(http.post("/v1/ask", json={"source": url, "question": "?"}), 400)["type"] == "NotAllowed"


def test_malformed_json_wrong_content_and_bad_fields(server):
    with server.client() as http:
        assert (
            _error(http.post("/v1/ask", content=b"{nope", headers={"Content-Type": "application/json"}), 400)["type"]
            == "InvalidJSON"
        )
        _error(http.post("/v1/ask", content=b"question=hi", headers={"Content-Type": "text/plain"}), 422)
        _error(http.post("/v1/ask", json={"question": "?", "from": "soon"}), 422)
        _error(http.post("/v1/ask", json={"question": "?", "unknown": 1}), 422)
        _error(http.post("/v1/ask", json={"question": "?"}), 400)  # neither source nor source_id
        _error(http.post("/v1/sources", json={"url": "x", "path": "y"}), 400)


def test_a_full_service_answers_429_with_retry_after(server):
    service = server.service
    taken = 0

    def take_every_free_slot() -> None:  # as many concurrent requests would
        nonlocal taken
        while True:
            try:
                service.acquire()
            except Exception:
                return
            taken += 1

    try:
        with server.client() as http:
            for _ in range(20):  # a request of an earlier test still finishing may free a slot
                take_every_free_slot()
                response = http.get("/v1/models")
                if response.status_code != 200:
                    break
                time.sleep(0.1)
            _error(response, 429)
            assert response.headers["retry-after"] == "1"
            assert http.get("/health").status_code == 200  # never limited
    finally:
        for _ in range(taken):
            service.release()
    with server.client() as http:
        assert http.get("/v1/models").status_code == 200
