"""`heron batch` killed with SIGKILL at random points, then run again: every (video, question)
exactly once, with the answers of an undisturbed run.

The command runs as a user runs it — a separate process (joining this session's Ray, as a
cluster user would with RAY_ADDRESS) on its own Redis server with an append-only file — and is
killed before its first result, and then each time right after it committed new ones.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis

from heron.config import load_pipeline_config
from heron.pipeline.inputs import read_inputs
from heron.service import Heron
from heron.service.batch import BatchRun
from heron.state import RedisConnection, ResultStore
from tests.batch.conftest import QUESTIONS, make_archive

from .redis_process import RedisProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOB = "kill-loop"


def _reference(videos, redis_url) -> dict:
    """The undisturbed run, in this process, in a namespace of its own."""
    namespace = f"heron-kill-reference-{time.monotonic_ns()}"
    with Heron(load_pipeline_config("demo"), redis_url=redis_url, progress=False, namespace=namespace) as heron:
        run = BatchRun(heron, read_inputs(str(videos), QUESTIONS), job_id="reference")
        run.run()
        rows = ResultStore(heron.db).rows("reference")
        heron.db.clear_all()
    return {(r["video"], r["question"]): (r["answer"], r["spans"], (r["error"] or {}).get("type")) for r in rows}


def test_sigkill_at_random_points_then_rerun_gives_each_result_once_and_the_same_answers(
    ray_session, redis_url, tmp_path
):
    videos, out = tmp_path / "videos", tmp_path / "results.jsonl"
    make_archive(videos, copies=2, seconds=5.0)
    expected = _reference(videos, redis_url)
    rng = random.Random(20261201)
    command = [sys.executable, "-m", "heron", "batch", str(videos), "--out", str(out), "--job", JOB, "--no-progress"]
    command += ["--parallel", "1"]  # one video at a time: results come a video apart, so kills land between them
    command += [arg for q in QUESTIONS for arg in ("-q", q)]
    with RedisProcess(tmp_path / "redis") as server:
        env = {
            **os.environ,
            "HERON_REDIS_URL": server.url,
            "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address,
            "RAY_AUTH_MODE": "disabled",
        }
        results = redis.Redis.from_url(server.url)
        key = RedisConnection(server.url).key("job", JOB, "results")  # the CLI's default namespace
        seen = [0]
        for kill in range(4):
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 120
                if kill == 0:  # somewhere in start-up: Redis, Ray, the model, the first decodes
                    time.sleep(rng.uniform(0.5, 4.0))
                else:  # just after it committed something new, a moment later at random
                    while results.hlen(key) <= seen[-1] and process.poll() is None:
                        assert time.monotonic() < deadline, "no new result within 120 s"
                        time.sleep(0.02)
                    time.sleep(rng.uniform(0.0, 0.3))
                if process.poll() is not None:
                    assert process.returncode in (0, 1), process.stderr.read().decode()[-2000:]
                    break  # it finished first: nothing left to kill
                process.kill()
            finally:
                process.wait(timeout=30)
            seen.append(results.hlen(key))
        assert any(0 < n < len(expected) for n in seen), f"no kill landed mid-batch: committed counts {seen}"
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 1 and "failures are rows" in final.stderr, final.stderr[-2000:]  # broken files
        assert results.hlen(key) == len(expected)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter((r["video"], r["question"]) for r in rows) == {k: 1 for k in expected}
    got = {(r["video"], r["question"]): (r["answer"], r["spans"], (r["error"] or {}).get("type")) for r in rows}
    assert got == expected
