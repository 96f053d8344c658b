"""Heron's own routes against a real server: ingest jobs with progress, questions, SSE, sessions, sources."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.integration


def _wait(client, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_source_is_ingested_as_a_job_then_asked_about_by_id(server):
    with server.client() as http:
        added = http.post("/v1/sources", json={"path": str(server.videos / "square.mp4")})
        assert added.status_code == 202 and added.json()["job"]["status"] in ("queued", "running", "done")
        job = _wait(http, added.json()["job"]["id"])
        assert job["status"] == "done" and job["progress"] == 1.0 and job["result"]["windows_encoded"] in (0, 2)
        source_id = added.json()["source_id"]
        listed = http.get("/v1/sources").json()["data"]
        assert source_id in {s["source_id"] for s in listed}
        answer = http.post("/v1/ask", json={"source_id": source_id, "question": "What moves?"}).json()
        assert answer["source_id"] == source_id and answer["spans"] == [[0.0, 3.0], [4.0, 7.0]]


def test_ask_by_path_then_follow_up_in_the_session(server):
    with server.client() as http:
        first = http.post(
            "/v1/ask", json={"source": str(server.videos / "square.mp4"), "question": "What moves?", "from": 4, "to": 8}
        ).json()
        assert first["spans"] == [[4.0, 7.0]] and first["fps"] == 1.0
        http.post(
            "/v1/ask",
            json={"source": str(server.videos / "square.mp4"), "question": "And then?", "session": first["session"]},
        )
        session = http.get(f"/v1/sessions/{first['session']}").json()
        assert [t["text"] for t in session["turns"] if t["role"] == "user"] == ["What moves?", "And then?"]
        assert http.delete(f"/v1/sessions/{first['session']}").status_code == 200
        assert http.get(f"/v1/sessions/{first['session']}").status_code == 404


def test_ask_streams_tokens_then_the_answer_as_server_sent_events(server):
    with server.client() as http:
        body = {"source": str(server.videos / "square.mp4"), "question": "What moves?", "stream": True}
        with http.stream("POST", "/v1/ask", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [block for block in response.read().decode().split("\n\n") if block]
        names = [block.split("\n")[0].removeprefix("event: ") for block in events]
        assert names[-1] == "answer" and names.count("token") >= 1
        tokens = "".join(json.loads(b.split("data: ", 1)[1])["text"] for b in events if b.startswith("event: token"))
        final = json.loads(events[-1].split("data: ", 1)[1])
        assert tokens == final["answer"]


def test_an_upload_in_the_body_is_ingested(server):
    with server.client() as http:
        data = (server.videos / "short.mp4").read_bytes()
        added = http.post("/v1/sources", content=data, headers={"Content-Type": "video/mp4"})
        assert added.status_code == 202
        assert _wait(http, added.json()["job"]["id"])["status"] == "done"


def test_a_failed_ingest_is_a_failed_job_with_its_error(server, tmp_path):
    broken = server.videos / "broken.mp4"
    broken.write_bytes((server.videos / "square.mp4").read_bytes()[:600])
    with server.client() as http:
        added = http.post("/v1/sources", json={"path": str(broken)})
        if added.status_code == 202:  # the probe may already refuse it; if not, the job fails
            job = _wait(http, added.json()["job"]["id"])
            assert job["status"] == "failed" and job["error"]
        else:
            assert added.status_code == 400 and added.json()["error"]["type"].endswith("Error")


def test_unknown_things_are_404(server):
    with server.client() as http:
        for path in ("/v1/jobs/nope", "/v1/sessions/nope", "/nope"):
            response = http.get(path)
            assert response.status_code == 404 and response.json()["error"]["message"]
        assert http.delete("/v1/sources/nope").status_code == 404
        missing = http.post("/v1/ask", json={"source": str(server.videos / "missing.mp4"), "question": "?"})
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "SourceNotFoundError"


def test_concurrent_questions_share_forward_passes(server):
    import concurrent.futures

    source = str(server.videos / "square.mp4")
    with server.client() as http:
        http.post("/v1/ask", json={"source": source, "question": "warm"})  # cached from here on
        before = server.service.heron.answer_stats()

        def ask(i):
            return http.post("/v1/ask", json={"source": source, "question": f"What moves? {i}"}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(ask, range(8)))
    after = server.service.heron.answer_stats()
    assert codes == [200] * 8
    requests, batches = after["requests"] - before["requests"], after["batches"] - before["batches"]
    assert requests == 8 and batches < 8  # several questions answered in one forward pass


def test_heron_ask_uses_a_running_server(server, capsys, monkeypatch, tmp_path):
    from heron.cli import main

    monkeypatch.setenv("HERON_API_KEY", "test-key-0123456789")
    source = str(server.videos / "square.mp4")
    assert main(["ask", source, "What moves?", "--server", server.url]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("  used: 0.0–7.0 s") and f"answered by {server.url}" in err
    assert main(["ask", source, "What moves?", "--server", server.url, "--json"]) == 0
    assert "spans" in capsys.readouterr().out
    outside = tmp_path / "elsewhere.mp4"  # not under the server's allowed roots: uploaded instead
    outside.write_bytes((server.videos / "short.mp4").read_bytes())
    assert main(["ask", str(outside), "What moves?", "--server", server.url]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("  used: 0.0–2.0 s")
    monkeypatch.setenv("HERON_API_KEY", "wrong")
    assert main(["ask", source, "What moves?", "--server", server.url]) == 2
    assert capsys.readouterr().err.startswith("heron: error: a valid API key is needed")
    assert main(["ask", source, "What moves?", "--server", "http://127.0.0.1:1"]) == 2
    assert "cannot reach the Heron server" in capsys.readouterr().err
