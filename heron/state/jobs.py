"""Jobs in Redis: long-running requests (ingest a source, a batch over an archive) and where they stand.

    job:{id}   hash: kind, params, status, progress, result, error, counters, times (JSON fields)
    job:{id}:w:{write}  a guard per update (expires): a retried update adds to counters once
    jobs       sorted set: job id -> created_at (listing, newest first)

Every update is one Lua script: it changes the fields only if the job exists, and returns the
job as it is after the change, so no half-written job is ever visible and none is created by an
update of an unknown id.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from heron.errors import StateStoreError
from heron.state.connection import (
    FORMAT_VERSION,
    WRITE_GUARD_TTL_S,
    RedisConnection,
    decode_fields,
    redis_errors_translated,
)

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")

# KEYS[1] = the job; ARGV = field, value, ...: written only if the job does not exist yet.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
# KEYS[1] = the job, KEYS[2] = the write's guard (when counters are added); ARGV = guard ttl (s),
# the statuses the job must have for the update to apply (comma-separated; "" = any), then field,
# value, field, value, ...; ARGV may hold "+counter", n pairs (HINCRBY), applied only the first
# time the guard is set, so a retried update counts once. Returns nil for an unknown job, else its
# fields after the change (unchanged when its status was not one of those required).
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[2] ~= '' then
  local status = redis.call('HGET', KEYS[1], 'status') or ''
  if not string.find(',' .. ARGV[2] .. ',', ',' .. status .. ',', 1, true) then
    return redis.call('HGETALL', KEYS[1])
  end
end
local first = #KEYS < 2 or redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])
for i = 3, #ARGV, 2 do
  local name = ARGV[i]
  if string.sub(name, 1, 1) == '+' then
    if first then redis.call('HINCRBY', KEYS[1], 'n:' .. string.sub(name, 2), ARGV[i + 1]) end
  else
    redis.call('HSET', KEYS[1], name, ARGV[i + 1])
  end
end
return redis.call('HGETALL', KEYS[1])
"""


@dataclass(frozen=True)
class Job:
    """A long-running request and where it stands."""

    job_id: str
    kind: str  # "ingest", "batch", ...
    params: dict[str, Any]
    status: str  # one of JOB_STATUSES
    progress: float  # 0.0 .. 1.0
    result: Any  # JSON value, None until set
    error: str | None
    created_at: float  # unix time, seconds
    updated_at: float
    counters: dict[str, int] = field(default_factory=dict)  # e.g. done / failed / pending items

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "counters": self.counters,
        }


class JobStore:
    """Creates, updates (atomically) and lists jobs."""

    def __init__(self, db: RedisConnection):
        self.db = db

    def _key(self, job_id: str) -> str:
        return self.db.key("job", job_id)

    @redis_errors_translated
    def create_job(self, kind: str, params: Mapping[str, Any] | None = None, *, job_id: str | None = None) -> str:
        """Record a new job in status "queued"; returns its id (``job_id`` if given and new).

        Raises StateStoreError if ``job_id`` already exists (use ``get_job`` to resume it)."""
        job_id = job_id or uuid.uuid4().hex
        now = repr(time.time())
        record = {
            "fmt": str(FORMAT_VERSION),
            "kind": kind,
            "params": json.dumps(dict(params or {})),
            "status": "queued",
            "progress": "0.0",
            "result": "null",
            "error": "",
            "created_at": now,
            "updated_at": now,
        }
        argv = [item for pair in record.items() for item in pair]
        if not self.db.script("job_create", _CREATE)(keys=[self._key(job_id)], args=argv):
            raise StateStoreError(f"job {job_id!r} already exists")
        self.db.client.zadd(self.db.index_key("jobs"), {job_id: float(now)})
        return job_id

    @redis_errors_translated
    def update_job(
        self,
        job_id: str,
        *,
        status: str | None = None,
        progress: float | None = None,
        result: Any = None,
        error: str | None = None,
        add: Mapping[str, int] | None = None,
        counters: Mapping[str, int] | None = None,
        if_status: Collection[str] = (),
    ) -> Job:
        """Change the given fields of a job atomically and return it; ``add`` increments counters,
        ``counters`` sets them. With no field given, only ``updated_at`` moves (a heartbeat).
        With ``if_status``, nothing changes unless the job's status is one of those (compare and
        set: e.g. a queued job starts only if nobody cancelled it meanwhile); the job returned
        says which happened.

        ``result`` must be JSON-serialisable. StateStoreError for an unknown job (nothing is written)."""
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"job status {status!r} is not one of {JOB_STATUSES}")
        if progress is not None and not 0.0 <= progress <= 1.0:
            raise ValueError(f"job progress must be within [0, 1], got {progress}")
        if unknown := [s for s in if_status if s not in JOB_STATUSES]:
            raise ValueError(f"job statuses {unknown} are not among {JOB_STATUSES}")
        fields: dict[str, str] = {"updated_at": repr(time.time())}
        if status is not None:
            fields["status"] = status
        if progress is not None:
            fields["progress"] = repr(float(progress))
        if result is not None:
            fields["result"] = json.dumps(result)
        if error is not None:
            fields["error"] = error
        for name, n in (counters or {}).items():
            fields[f"n:{name}"] = str(int(n))
        argv: list[str | int] = [WRITE_GUARD_TTL_S, ",".join(if_status)]
        argv += [item for pair in fields.items() for item in pair]
        argv += [item for name, n in (add or {}).items() for item in (f"+{name}", int(n))]
        keys = [self._key(job_id), *([self.db.guard_key("job", job_id)] if add else [])]
        record = self.db.script("job_update", _UPDATE)(keys=keys, args=argv)
        if not record:
            raise StateStoreError(f"no job {job_id!r} in Redis at {self.db.where} (expired or never created)")
        return self._decode(job_id, dict(zip(record[::2], record[1::2])))

    @redis_errors_translated
    def get_job(self, job_id: str) -> Job | None:
        """The job, or None if unknown."""
        record = self.db.client.hgetall(self._key(job_id))
        return self._decode(job_id, record) if record.get(b"fmt") else None

    @redis_errors_translated
    def list_jobs(self, *, kind: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs newest first (of one ``kind`` if given)."""
        ids = [i.decode() for i in self.db.client.zrevrange(self.db.index_key("jobs"), 0, -1)]
        jobs = []
        for job_id in ids:
            job = self.get_job(job_id)
            if job is not None and (kind is None or job.kind == kind):
                jobs.append(job)
                if len(jobs) >= limit:
                    break
        return jobs

    @redis_errors_translated
    def delete_job(self, job_id: str) -> bool:
        """Forget a job; False if unknown."""
        self.db.client.zrem(self.db.index_key("jobs"), job_id)
        return bool(self.db.client.unlink(self._key(job_id)))

    def _decode(self, job_id: str, record: dict[bytes, bytes]) -> Job:
        fields = decode_fields(record)
        try:
            return Job(
                job_id=job_id,
                kind=fields["kind"],
                params=json.loads(fields.get("params", "{}")),
                status=fields.get("status", "queued"),
                progress=float(fields.get("progress", 0.0)),
                result=json.loads(fields.get("result", "null")),
                error=fields.get("error") or None,
                created_at=float(fields.get("created_at", 0.0)),
                updated_at=float(fields.get("updated_at", 0.0)),
                counters={name[2:]: int(value) for name, value in fields.items() if name.startswith("n:")},
            )
        except (KeyError, ValueError) as error:
            raise StateStoreError(f"corrupt job record at {self._key(job_id)}: {error!r}") from error
