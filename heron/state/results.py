"""Batch results in Redis: each (video, question) answered under a job, committed exactly once.

    job:{id}:results   hash: result key -> the result row (JSON)
    job:{id}:failed    set: the result keys whose row is an error

A result key names what was asked (content id, question, model, decode settings, range), so the
same work is never done twice; ``commit`` writes a row only if its key is new, and counts it
(done or failed, one less pending) in the job record in the same Lua script — the job and its
results share the job's hash tag. A results file written from ``rows`` holds each row once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from heron.state.connection import RedisConnection, redis_errors_translated

# KEYS: results hash, failed set, job hash; ARGV: result key, row JSON, "done" | "failed".
_COMMIT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] == 'failed' then redis.call('SADD', KEYS[2], ARGV[1]) end
redis.call('HINCRBY', KEYS[3], 'n:' .. ARGV[3], 1)
redis.call('HINCRBY', KEYS[3], 'n:pending', -1)
return 1
"""


class ResultStore:
    def __init__(self, db: RedisConnection):
        self.db = db

    def _keys(self, job_id: str) -> list[str]:
        return [self.db.key("job", job_id, "results"), self.db.key("job", job_id, "failed"), self.db.key("job", job_id)]

    @redis_errors_translated
    def commit(self, job_id: str, result_key: str, row: Mapping[str, Any], *, failed: bool) -> bool:
        """Record a result once; False (and nothing written) when it was committed before."""
        written = self.db.script("result_commit", _COMMIT)(
            keys=self._keys(job_id),
            args=[result_key, json.dumps(dict(row), sort_keys=True), "failed" if failed else "done"],
        )
        return bool(written)

    @redis_errors_translated
    def committed(self, job_id: str) -> dict[str, bool]:
        """Every committed result key of the job -> whether its row is an error."""
        results, failed, _ = self._keys(job_id)
        pipe = self.db.client.pipeline(transaction=False)
        pipe.hkeys(results)
        pipe.smembers(failed)
        keys, errors = pipe.execute()
        return {k.decode(): k in errors for k in keys}

    @redis_errors_translated
    def rows(self, job_id: str, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The committed rows of ``keys`` (default: all of the job's), in input order (``index``)."""
        results = self._keys(job_id)[0]
        if keys is None:
            values = self.db.client.hvals(results)
        else:
            values = []
            for i in range(0, len(keys), 1000):  # HMGET in slices: a huge job is not one reply
                values += self.db.client.hmget(results, list(keys[i : i + 1000]))
        rows = [json.loads(v) for v in values if v is not None]
        return sorted(rows, key=lambda r: (r.get("index", 0), r.get("question", "")))

    @redis_errors_translated
    def forget(self, job_id: str) -> None:
        self.db.client.unlink(*self._keys(job_id)[:2])
