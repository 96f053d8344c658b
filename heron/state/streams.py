"""Live streams in Redis: each stream's record, its gaps, its watches and their event state.

    stream:{id}            hash: spec (JSON), status, started_at (UTC s of stream time 0), last_t,
                           windows, frames, reconnects, lag_s, decode_fps, sample_fps, error, ...
    stream:{id}:gaps       list of JSON gaps, newest first, trimmed to the configured length
    stream:{id}:watches    hash: watch id -> the watch (JSON)
    stream:{id}:wstate     hash: watch id -> its event state (JSON)
    stream:{id}:w:{write}  a guard per counter update (expires), so a retried one counts once
    streams                set of stream ids

Everything a stream actor needs to continue after a restart is here (its windows are in the
latents store under the stream id), so Ray may restart it without a window or an alert twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from heron.state.connection import WRITE_GUARD_TTL_S, RedisConnection, decode_fields, redis_errors_translated

_NUMBERS = ("started_at", "last_t", "lag_s", "decode_fps", "sample_fps", "updated_at")
_COUNTS = ("windows", "frames", "reconnects", "skipped_windows")

# KEYS: the stream record, the write's guard; ARGV: guard ttl (s), counter, n, counter, n, ...
_ADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) == false then return 0 end
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


class StreamStore:
    def __init__(self, db: RedisConnection):
        self.db = db

    def _key(self, stream_id: str, *parts: str) -> str:
        return self.db.key("stream", stream_id, *parts)

    # --- the stream record ------------------------------------------------------------------------

    @redis_errors_translated
    def register(self, stream_id: str, spec: Mapping[str, Any], *, started_at: float) -> dict[str, Any]:
        """Record a stream (its spec and stream-time origin), keeping what an earlier run wrote."""
        key = self._key(stream_id)
        pipe = self.db.client.pipeline(transaction=True)
        pipe.hsetnx(key, "started_at", repr(started_at))
        pipe.hset(key, mapping={"spec": json.dumps(dict(spec)), "status": "starting", "updated_at": repr(time.time())})
        pipe.execute()
        self.db.client.sadd(self.db.index_key("streams"), stream_id)
        return self.get(stream_id)

    @redis_errors_translated
    def update(self, stream_id: str, **fields: Any) -> None:
        """Set fields of the stream record (numbers, strings; None deletes the field)."""
        key = self._key(stream_id)
        values = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items() if v is not None}
        values["updated_at"] = repr(time.time())
        pipe = self.db.client.pipeline(transaction=True)
        pipe.hset(key, mapping=values)
        dropped = [k for k, v in fields.items() if v is None]
        if dropped:
            pipe.hdel(key, *dropped)
        pipe.execute()

    @redis_errors_translated
    def add(self, stream_id: str, **counts: int) -> None:
        """Add to counters of the stream record (windows, frames, reconnects, skipped_windows), once
        however often the connection's retry sends it."""
        argv = [WRITE_GUARD_TTL_S, *(item for name, n in counts.items() for item in (name, int(n)))]
        guard = self.db.guard_key("stream", stream_id)
        self.db.script("stream_add", _ADD_ONCE)(keys=[self._key(stream_id), guard], args=argv)

    @redis_errors_translated
    def get(self, stream_id: str) -> dict[str, Any] | None:
        raw = self.db.client.hgetall(self._key(stream_id))
        if not raw:
            return None
        fields: dict[str, Any] = decode_fields(raw)
        fields["id"] = stream_id
        fields["spec"] = json.loads(fields.get("spec", "{}"))
        for name in _NUMBERS:
            if name in fields:
                fields[name] = float(fields[name])
        for name in _COUNTS:
            fields[name] = int(fields.get(name, 0))
        return fields

    @redis_errors_translated
    def ids(self) -> list[str]:
        return sorted(member.decode() for member in self.db.client.smembers(self.db.index_key("streams")))

    def find(self, uri: str) -> str | None:
        """The id of the stream reading ``uri``, if one was registered."""
        for stream_id in self.ids():
            record = self.get(stream_id)
            if record is not None and record["spec"].get("uri") == uri:
                return stream_id
        return None

    @redis_errors_translated
    def forget(self, stream_id: str) -> None:
        """Delete the stream's record, gaps, watches and their state (not its windows or alerts)."""
        self.db.client.unlink(*[self._key(stream_id, *p) for p in ((), ("gaps",), ("watches",), ("wstate",))])
        self.db.client.srem(self.db.index_key("streams"), stream_id)

    # --- gaps -------------------------------------------------------------------------------------

    @redis_errors_translated
    def add_gap(self, stream_id: str, gap: Mapping[str, Any], *, keep: int) -> None:
        pipe = self.db.client.pipeline(transaction=True)
        pipe.lpush(self._key(stream_id, "gaps"), json.dumps(dict(gap)))
        pipe.ltrim(self._key(stream_id, "gaps"), 0, keep - 1)
        pipe.execute()

    @redis_errors_translated
    def gaps(self, stream_id: str, count: int = 100) -> list[dict[str, Any]]:
        """The newest ``count`` gaps, oldest first."""
        return [json.loads(g) for g in reversed(self.db.client.lrange(self._key(stream_id, "gaps"), 0, count - 1))]

    # --- watches and their state -------------------------------------------------------------------

    @redis_errors_translated
    def put_watch(self, stream_id: str, watch_id: str, watch: Mapping[str, Any]) -> None:
        self.db.client.hset(self._key(stream_id, "watches"), watch_id, json.dumps(dict(watch)))

    @redis_errors_translated
    def watches(self, stream_id: str) -> dict[str, dict[str, Any]]:
        raw = self.db.client.hgetall(self._key(stream_id, "watches"))
        return {k.decode(): json.loads(v) for k, v in sorted(raw.items())}

    @redis_errors_translated
    def remove_watch(self, stream_id: str, watch_id: str) -> bool:
        pipe = self.db.client.pipeline(transaction=True)
        pipe.hdel(self._key(stream_id, "watches"), watch_id)
        pipe.hdel(self._key(stream_id, "wstate"), watch_id)
        removed, _ = pipe.execute()
        return bool(removed)

    @redis_errors_translated
    def watch_states(self, stream_id: str) -> dict[str, dict[str, Any]]:
        raw = self.db.client.hgetall(self._key(stream_id, "wstate"))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    @redis_errors_translated
    def put_watch_state(self, stream_id: str, watch_id: str, state: Mapping[str, Any]) -> None:
        self.db.client.hset(self._key(stream_id, "wstate"), watch_id, json.dumps(dict(state)))
