"""Batches over HTTP: create (checked against the source policy), follow, read results, cancel, resume."""

from __future__ import annotations

import functools
import http.server
import threading
import time

import pytest

pytestmark = pytest.mark.integration


def _wait_finished(client, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/batches/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"batch {job_id} did not finish within {timeout_s} s: {job}")


@pytest.fixture(scope="module")
def served(server):
    """The test videos over HTTP on 127.0.0.2 (the test server's allow-listed host)."""
    handler = functools.partial(_Quiet, directory=str(server.videos))
    http_server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.2:{http_server.server_port}"
    http_server.shutdown()


def test_a_batch_of_paths_and_urls_runs_to_results_and_a_repost_resumes_nothing(server, served):
    broken = server.videos / "broken.mp4"
    broken.write_text("not a video\n" * 40)
    body = {
        "videos": [
            str(server.videos / "square.mp4"),
            {"video": f"{served}/short.mp4", "from": 0, "to": 2},
            str(broken),
        ],
        "questions": ["What moves?", "What color?"],
        "job": "api-batch",
    }
    with server.client() as client:
        created = client.post("/v1/batches", json=body)
        assert created.status_code == 202, created.text
        assert created.json()["job"]["id"] == "api-batch"
        job = _wait_finished(client, "api-batch")
        assert job["status"] == "done" and job["counters"] == {"done": 4, "failed": 2, "pending": 0}
        rows = client.get("/v1/batches/api-batch/results").json()["data"]
        assert len(rows) == 6 and len({(r["video"], r["question"]) for r in rows}) == 6
        assert {r["error"]["type"] for r in rows if r["error"]} == {"NotAVideoError"}
        ranged = [r for r in rows if r["video"].endswith("short.mp4")]
        assert all(r["answer"] is not None and r["from"] == 0 and r["to"] == 2 for r in ranged)
        lines = client.get("/v1/batches/api-batch/results", params={"format": "jsonl"}).text.splitlines()
        assert len(lines) == 6
        assert any(j["id"] == "api-batch" for j in client.get("/v1/batches").json()["data"])
        answered = server.service.heron.answer_stats()["requests"]
        assert client.post("/v1/batches", json=body).status_code == 202  # the same job: resumed, all committed
        assert _wait_finished(client, "api-batch")["result"]["skipped"] == 6
        assert server.service.heron.answer_stats()["requests"] == answered


def test_refused_references_are_400_before_any_job_and_unknown_batches_404(server, tmp_path):
    with server.client() as client:
        outside = client.post("/v1/batches", json={"videos": [str(tmp_path / "x.mp4")], "questions": ["Q?"]})
        assert outside.status_code == 400 and "outside the directories" in outside.json()["error"]["message"]
        private = client.post("/v1/batches", json={"videos": ["http://10.0.0.1/a.mp4"], "questions": ["Q?"]})
        assert private.status_code == 400
        neither = client.post("/v1/batches", json={"questions": ["Q?"]})
        assert neither.status_code == 400 and "exactly one of videos and input" in neither.json()["error"]["message"]
        no_question = client.post("/v1/batches", json={"videos": [str(server.videos / "square.mp4")]})
        assert no_question.status_code == 400 and "no question" in no_question.json()["error"]["message"]
        assert client.get("/v1/batches/nope").status_code == 404
        assert client.delete("/v1/batches/nope").status_code == 404
        assert client.get("/v1/batches/nope/results").status_code == 404


def test_cancel_then_repost_finishes_the_rest(server):
    import shutil

    folder = server.videos / "many"
    folder.mkdir(exist_ok=True)
    for n in range(6):  # other bytes each: nothing cached, so the batch takes a while
        target = folder / f"v{n}.mp4"
        shutil.copy(server.videos / "square.mp4", target)
        with open(target, "ab") as handle:
            handle.write(bytes([n]) * 16)
    body = {"input": str(folder), "questions": ["What moves?"], "job": "api-cancel"}
    with server.client() as client:
        assert client.post("/v1/batches", json=body).status_code == 202
        cancelled = client.delete("/v1/batches/api-cancel").json()
        assert cancelled["status"] == "cancelled"
        job = _wait_finished(client, "api-cancel")
        assert job["status"] == "cancelled"
        assert client.post("/v1/batches", json=body).status_code == 202
        job = _wait_finished(client, "api-cancel")
        assert job["status"] == "done" and job["counters"]["pending"] == 0
        rows = client.get("/v1/batches/api-cancel/results").json()["data"]
        assert sorted(r["video"].rsplit("/", 1)[-1] for r in rows) == [f"v{n}.mp4" for n in range(6)]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass
