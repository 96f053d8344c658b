"""Heron's state in Redis: window latents, dialogue turns, jobs and alerts.

Everything lives under ``{namespace}:v{FORMAT_VERSION}:`` (``heron:v1:`` by default); the full key
schema and the migration rule are in docs/state.md. In short:

- Latents are cached per ``source key = (content id, settings fingerprint)``: the fingerprint hashes
  the encoder settings (model id, fps, window size, ...), so a different model or sampling never
  gets another's latents. Each window is one hash (fp16 bytes + shape + dtype + times); a sorted set
  per source indexes windows by start time for range queries.
- A change to any record's encoding bumps ``FORMAT_VERSION`` and with it the key prefix, so data in
  an old format is simply a cache miss (and ``clear_old_formats`` removes it). Inside the current
  prefix every record also carries ``fmt``; one with a missing or foreign ``fmt`` is dropped and its
  source marked incomplete, so the pipeline re-encodes and rewrites it. Neither case raises.
- Writes that belong together go in one MULTI/EXEC pipeline: one round trip, never half-visible.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import redis

from heron.errors import StateStoreError, TimeRangeError
from heron.pipeline.redis_server import redact_url
from heron.pipeline.types import MediaChunk

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump on any change of key layout or record encoding (see module docstring)
LATENT_DTYPE = "float16"  # what latents are stored as; they come back as this dtype
_WIRE_DTYPES = {"float16": np.dtype("<f2")}  # stored dtype name -> explicit little-endian layout
_FLOAT16_MAX = float(np.finfo(np.float16).max)
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")

P = ParamSpec("P")
R = TypeVar("R")


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable hash (16 hex chars) of the encoder settings that shape the latents.

    Pass everything that changes the latents: model id (and weights revision), fps, window size,
    resolution, resampler size. Keys are sorted, so order does not matter; types do (1 != 1.0).
    """
    canonical = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SourceInfo:
    """What the cache holds for one source under one encoder fingerprint."""

    source_id: str  # content id of the source
    fingerprint: str  # settings_fingerprint of the encoder settings
    settings: dict[str, Any]  # the encoder settings the fingerprint was made from
    duration_s: float | None  # length of the source in seconds, when known
    n_windows: int | None  # windows the source has in total, when known
    cached_windows: int  # windows stored now
    complete: bool  # every window is stored: the source need not be decoded again
    max_window_s: float  # longest stored window (t_end - t_start), seconds
    updated_at: float  # unix time of the last write, seconds
    name: str | None = None  # the path or URL it was last ingested from, for people reading `cache ls`


@dataclass(frozen=True)
class Turn:
    """One dialogue turn."""

    role: str  # "user", "assistant", "system", ...
    text: str
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the time spans an answer used
    at: float = 0.0  # unix time, seconds


@dataclass(frozen=True)
class Job:
    """A long-running request (encode a source, answer over a stream) and where it stands."""

    job_id: str
    kind: str
    params: dict[str, Any]
    status: str  # one of JOB_STATUSES
    progress: float  # 0.0 .. 1.0
    result: Any  # JSON value, None until set
    error: str | None
    created_at: float  # unix time, seconds
    updated_at: float


@dataclass(frozen=True)
class Alert:
    """One alert raised on a live stream; ``alert_id`` is the Redis stream id (a cursor for polling)."""

    alert_id: str
    at: float  # unix time, seconds (from the stream id)
    data: dict[str, Any]


def _translate_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn redis-py errors into ``StateStoreError`` naming the server and the operation."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as error:
            where = getattr(args[0], "where", "?")
            raise StateStoreError(f"Redis at {where} failed in {method.__name__}: {error}") from error

    return wrapper


class RedisStateStore:
    """Reads and writes Heron's state in one Redis database.

    redis_or_url: a ``redis://`` URL, or a ``redis.Redis`` client created with decode_responses=False.
    encoder_settings: the settings whose fingerprint keys the latents cache (needed only by the
        source/chunk methods; dialogue, jobs and alerts work without it).
    namespace: first key segment; tests use their own so they can never touch real data.
    alert_maxlen: alerts kept per stream (approximately; older ones are trimmed on write).
    """

    def __init__(
        self,
        redis_or_url: str | redis.Redis,
        *,
        encoder_settings: Mapping[str, Any] | None = None,
        namespace: str = "heron",
        alert_maxlen: int = 10_000,
    ):
        if isinstance(redis_or_url, str):
            self._url: str | None = redis_or_url
            self.where = redact_url(redis_or_url)
            try:
                self._client = redis.Redis.from_url(redis_or_url, socket_connect_timeout=5, socket_timeout=30)
            except ValueError as error:
                raise StateStoreError(f"invalid Redis URL {self.where!r}: {error}") from error
        else:
            self._url, self._client = None, redis_or_url
            kwargs = redis_or_url.connection_pool.connection_kwargs
            self.where = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
            if kwargs.get("decode_responses"):
                raise StateStoreError("RedisStateStore needs a client with decode_responses=False "
                                      "(latents are stored as raw bytes)")
        self._settings = dict(encoder_settings) if encoder_settings is not None else None
        self.fingerprint = settings_fingerprint(self._settings) if self._settings is not None else None
        self.namespace = namespace
        self.prefix = f"{namespace}:v{FORMAT_VERSION}:"
        self.alert_maxlen = alert_maxlen

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray ships stores to actors by pickling; a live connection cannot travel, its URL can.
        if self._url is None:
            raise TypeError("a RedisStateStore built from a client cannot be pickled; build it from a URL")
        return (functools.partial(RedisStateStore, self._url, encoder_settings=self._settings,
                                  namespace=self.namespace, alert_maxlen=self.alert_maxlen), ())

    def with_settings(self, encoder_settings: Mapping[str, Any]) -> RedisStateStore:
        """A store on the same connection whose latents cache is keyed by other encoder settings."""
        other = RedisStateStore(self._client, encoder_settings=encoder_settings,
                                namespace=self.namespace, alert_maxlen=self.alert_maxlen)
        other._url, other.where = self._url, self.where
        return other

    @_translate_errors
    def ping(self) -> None:
        """Raise ``StateStoreError`` unless the server answers."""
        self._client.ping()

    # --- keys -----------------------------------------------------------------------------------

    def _require_fingerprint(self) -> str:
        if self.fingerprint is None:
            raise StateStoreError("this RedisStateStore has no encoder_settings, so it cannot key the "
                                  "latents cache; pass encoder_settings=... (model id, fps, window size)")
        return self.fingerprint

    def _source_key(self, source_id: str, part: str) -> str:
        return f"{self.prefix}src:{self._require_fingerprint()}:{source_id}:{part}"

    def _chunk_key(self, source_id: str, index: int) -> str:
        return self._source_key(source_id, f"chunk:{index}")

    # --- window latents ---------------------------------------------------------------------------

    @_translate_errors
    def put_chunk(self, chunk: MediaChunk) -> None:
        """Store one window's latents (as fp16) and index it by start time, in one round trip."""
        key = self._chunk_key(chunk.source_id, chunk.index)
        record = _encode_chunk(chunk, key)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, mapping=record)
        pipe.zadd(self._source_key(chunk.source_id, "times"), {str(chunk.index): chunk.t_start})
        # ZADD GT keeps the longest window atomically; range queries widen their search by it.
        pipe.zadd(self._source_key(chunk.source_id, "span"), {"max": chunk.t_end - chunk.t_start}, gt=True)
        pipe.hset(self._source_key(chunk.source_id, "meta"), mapping=self._meta_base(chunk.source_id))
        pipe.sadd(self._sources_key(), chunk.source_id)
        pipe.execute()

    @_translate_errors
    def get_chunk(self, source_id: str, index: int) -> MediaChunk | None:
        """The cached window ``index`` of ``source_id``, or None if absent (or in a foreign format)."""
        key = self._chunk_key(source_id, index)
        return self._decode_or_drop(source_id, index, key, self._client.hgetall(key))

    def chunks_in_range(self, source_id: str, start_s: float, end_s: float) -> list[MediaChunk]:
        """Cached windows overlapping [start_s, end_s] seconds, ordered by start time."""
        return self.get_chunks(source_id, [index for index, _, _ in self.window_spans(source_id, start_s, end_s)])

    @_translate_errors
    def window_spans(self, source_id: str, start_s: float, end_s: float) -> list[tuple[int, float, float]]:
        """(index, t_start, t_end) of the cached windows overlapping [start_s, end_s], by start time,
        without reading their latents: choose from these, then ``get_chunks`` the chosen ones."""
        if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s > end_s:
            raise TimeRangeError(f"invalid time range [{start_s}, {end_s}] s: need finite start <= end")
        longest = self._client.zscore(self._source_key(source_id, "span"), "max") or 0.0
        # A window overlaps iff t_start <= end and t_end >= start; t_end <= t_start + longest, so
        # every candidate has t_start in [start - longest, end] and the index answers that directly.
        members = self._client.zrangebyscore(self._source_key(source_id, "times"), start_s - longest, end_s)
        indices = [int(member) for member in members]
        pipe = self._client.pipeline(transaction=False)
        for index in indices:
            pipe.hmget(self._chunk_key(source_id, index), "t_start", "t_end")
        spans = []
        for index, (t_start, t_end) in zip(indices, pipe.execute()):
            if t_start is not None and t_end is not None and float(t_end) >= start_s:
                spans.append((index, float(t_start), float(t_end)))
        return spans

    @_translate_errors
    def get_chunks(self, source_id: str, indices: list[int]) -> list[MediaChunk]:
        """The cached windows ``indices`` of ``source_id`` in one round trip (absent ones skipped)."""
        pipe = self._client.pipeline(transaction=False)
        for index in indices:
            pipe.hgetall(self._chunk_key(source_id, index))
        chunks = []
        for index, record in zip(indices, pipe.execute()):
            chunk = self._decode_or_drop(source_id, index, self._chunk_key(source_id, index), record)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    @_translate_errors
    def set_source_info(
        self,
        source_id: str,
        *,
        duration_s: float | None = None,
        n_windows: int | None = None,
        complete: bool | None = None,
        name: str | None = None,
    ) -> None:
        """Record what is known about a source; ``complete=True`` once every window is stored;
        ``name``: the path or URL it came from (the id is its content, so the last name wins)."""
        fields: dict[str, Any] = self._meta_base(source_id)
        if name is not None:
            fields["name"] = name
        if duration_s is not None:
            fields["duration_s"] = repr(float(duration_s))
        if n_windows is not None:
            fields["n_windows"] = str(int(n_windows))
        if complete is not None:
            fields["complete"] = "1" if complete else "0"
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._source_key(source_id, "meta"), mapping=fields)
        pipe.sadd(self._sources_key(), source_id)
        pipe.execute()

    @_translate_errors
    def source_info(self, source_id: str) -> SourceInfo | None:
        """What is cached for ``source_id`` under this store's encoder settings; None if nothing."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hgetall(self._source_key(source_id, "meta"))
        pipe.zcard(self._source_key(source_id, "times"))
        pipe.zscore(self._source_key(source_id, "span"), "max")
        meta, cached, longest = pipe.execute()
        if not meta:
            return None
        meta = {name.decode(): value.decode() for name, value in meta.items()}
        if meta.get("fmt") != str(FORMAT_VERSION):
            logger.warning("source %s: metadata in format %r, expected %d; dropping it (cache miss)",
                           source_id, meta.get("fmt"), FORMAT_VERSION)
            self.clear_source(source_id)
            return None
        try:
            return SourceInfo(
                source_id=source_id,
                fingerprint=meta["fingerprint"],
                settings=json.loads(meta.get("settings", "{}")),
                duration_s=float(meta["duration_s"]) if "duration_s" in meta else None,
                n_windows=int(meta["n_windows"]) if "n_windows" in meta else None,
                cached_windows=int(cached),
                complete=meta.get("complete") == "1",
                max_window_s=float(longest or 0.0),
                updated_at=float(meta.get("updated_at", 0.0)),
                name=meta.get("name"),
            )
        except (KeyError, ValueError) as error:
            raise StateStoreError(f"corrupt source metadata at {self._source_key(source_id, 'meta')}: "
                                  f"{error!r}; run clear_source({source_id!r})") from error

    def has_source(self, source_id: str) -> bool:
        """True when every window of ``source_id`` is cached for these settings (no decode needed)."""
        info = self.source_info(source_id)
        return info is not None and info.complete

    @_translate_errors
    def list_sources(self) -> list[str]:
        """Content ids with anything cached under this store's encoder settings, sorted."""
        return sorted(member.decode() for member in self._client.smembers(self._sources_key()))

    @_translate_errors
    def clear_source(self, source_id: str) -> int:
        """Delete everything cached for ``source_id`` under these settings; returns keys deleted."""
        members = self._client.zrange(self._source_key(source_id, "times"), 0, -1)
        keys = [self._chunk_key(source_id, int(member)) for member in members]
        keys += [self._source_key(source_id, part) for part in ("meta", "times", "span")]
        pipe = self._client.pipeline(transaction=True)
        pipe.unlink(*keys)
        pipe.srem(self._sources_key(), source_id)
        deleted, _ = pipe.execute()
        return int(deleted)

    def _sources_key(self) -> str:
        return f"{self.prefix}sources:{self._require_fingerprint()}"

    def _meta_base(self, source_id: str) -> dict[str, str]:
        return {
            "fmt": str(FORMAT_VERSION),
            "source_id": source_id,
            "fingerprint": str(self.fingerprint),
            "settings": json.dumps(self._settings, sort_keys=True),
            "updated_at": repr(time.time()),
        }

    def _decode_or_drop(
        self, source_id: str, index: int, key: str, record: dict[bytes, bytes]
    ) -> MediaChunk | None:
        """Decode a chunk record; one in a foreign format is deleted and its source marked incomplete."""
        if not record:
            return None
        fmt = record.get(b"fmt", b"").decode(errors="replace")
        if fmt != str(FORMAT_VERSION):
            logger.warning("%s is in format %r, expected %d; dropping it so the window is re-encoded",
                           key, fmt or "(none)", FORMAT_VERSION)
            pipe = self._client.pipeline(transaction=True)
            pipe.unlink(key)
            pipe.zrem(self._source_key(source_id, "times"), str(index))
            pipe.hset(self._source_key(source_id, "meta"), "complete", "0")
            pipe.execute()
            return None
        return _decode_chunk(source_id, index, key, record)

    # --- dialogue -----------------------------------------------------------------------------------

    @_translate_errors
    def append_turn(
        self, session_id: str, role: str, text: str, meta: Mapping[str, Any] | None = None
    ) -> Turn:
        """Append a turn to a session's dialogue (meta must be JSON-serialisable)."""
        turn = Turn(role=role, text=text, meta=dict(meta or {}), at=time.time())
        record = {"fmt": FORMAT_VERSION, "role": role, "text": text, "meta": turn.meta, "at": turn.at}
        self._client.rpush(self._session_key(session_id), json.dumps(record))
        return turn

    @_translate_errors
    def get_dialogue(self, session_id: str, last_n: int | None = None) -> list[Turn]:
        """A session's turns, oldest first; only the newest ``last_n`` if given."""
        if last_n is not None and last_n < 0:
            raise ValueError(f"last_n must be >= 0, got {last_n}")
        if last_n == 0:
            return []
        raw = self._client.lrange(self._session_key(session_id), -last_n if last_n else 0, -1)
        turns = []
        for item in raw:
            try:
                record = json.loads(item)
                turns.append(Turn(role=str(record["role"]), text=str(record["text"]),
                                  meta=dict(record.get("meta") or {}), at=float(record.get("at", 0.0))))
            except (ValueError, KeyError, TypeError):
                logger.warning("skipping unreadable turn in session %s: %r", session_id, item[:80])
        return turns

    @_translate_errors
    def clear_session(self, session_id: str) -> None:
        """Forget a session's dialogue."""
        self._client.unlink(self._session_key(session_id))

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    # --- jobs ------------------------------------------------------------------------------------------

    @_translate_errors
    def create_job(self, kind: str, params: Mapping[str, Any] | None = None) -> str:
        """Record a new job in status "queued"; returns its id."""
        job_id = uuid.uuid4().hex
        now = repr(time.time())
        self._client.hset(self._job_key(job_id), mapping={
            "fmt": str(FORMAT_VERSION), "kind": kind, "params": json.dumps(dict(params or {})),
            "status": "queued", "progress": "0.0", "result": "null", "error": "",
            "created_at": now, "updated_at": now,
        })
        return job_id

    @_translate_errors
    def update_job(
        self,
        job_id: str,
        *,
        status: str | None = None,
        progress: float | None = None,
        result: Any = None,
        error: str | None = None,
    ) -> Job:
        """Change the given fields of a job (result must be JSON-serialisable); returns the job."""
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"job status {status!r} is not one of {JOB_STATUSES}")
        if progress is not None and not 0.0 <= progress <= 1.0:
            raise ValueError(f"job progress must be within [0, 1], got {progress}")
        fields = {"updated_at": repr(time.time())}
        if status is not None:
            fields["status"] = status
        if progress is not None:
            fields["progress"] = repr(float(progress))
        if result is not None:
            fields["result"] = json.dumps(result)
        if error is not None:
            fields["error"] = error
        key = self._job_key(job_id)
        # One atomic round trip; HSET on an unknown id creates a stray half job, so undo it then.
        pipe = self._client.pipeline(transaction=True)
        pipe.exists(key)
        pipe.hset(key, mapping=fields)
        pipe.hgetall(key)
        existed, _, record = pipe.execute()
        if not existed:
            self._client.unlink(key)
            raise StateStoreError(f"no job {job_id!r} in Redis at {self.where} (expired or never created)")
        return self._decode_job(job_id, record)

    @_translate_errors
    def get_job(self, job_id: str) -> Job | None:
        """The job, or None if unknown."""
        record = self._client.hgetall(self._job_key(job_id))
        return self._decode_job(job_id, record) if record else None

    def _decode_job(self, job_id: str, record: dict[bytes, bytes]) -> Job:
        fields = {name.decode(): value.decode() for name, value in record.items()}
        try:
            return Job(
                job_id=job_id, kind=fields["kind"], params=json.loads(fields.get("params", "{}")),
                status=fields.get("status", "queued"), progress=float(fields.get("progress", 0.0)),
                result=json.loads(fields.get("result", "null")), error=fields.get("error") or None,
                created_at=float(fields.get("created_at", 0.0)),
                updated_at=float(fields.get("updated_at", 0.0)),
            )
        except (KeyError, ValueError) as error:
            raise StateStoreError(f"corrupt job record at {self._job_key(job_id)}: {error!r}") from error

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    # --- alerts ----------------------------------------------------------------------------------------

    @_translate_errors
    def push_alert(self, stream_id: str, alert: Mapping[str, Any]) -> str:
        """Append an alert (JSON-serialisable) to a live stream's alert log; returns its id."""
        alert_id = self._client.xadd(
            self._alerts_key(stream_id), {"fmt": str(FORMAT_VERSION), "data": json.dumps(dict(alert))},
            maxlen=self.alert_maxlen, approximate=True,  # approximate trimming is O(1) amortised
        )
        return alert_id.decode()

    @_translate_errors
    def list_alerts(self, stream_id: str, since: str | None = None, count: int | None = None) -> list[Alert]:
        """Alerts of a stream oldest first; only those after alert id ``since`` if given (a poll cursor)."""
        low = f"({since}" if since else "-"  # "(" makes the bound exclusive (Redis >= 6.2)
        alerts = []
        for entry_id, fields in self._client.xrange(self._alerts_key(stream_id), min=low, count=count):
            alert_id = entry_id.decode()
            try:
                data = json.loads(fields[b"data"])
            except (KeyError, ValueError):
                logger.warning("skipping unreadable alert %s of stream %s", alert_id, stream_id)
                continue
            alerts.append(Alert(alert_id=alert_id, at=int(alert_id.split("-")[0]) / 1000.0, data=data))
        return alerts

    def _alerts_key(self, stream_id: str) -> str:
        return f"{self.prefix}alerts:{stream_id}"

    # --- housekeeping ------------------------------------------------------------------------------

    @_translate_errors
    def clear_all(self) -> int:
        """Delete every key of this namespace, in every format version; returns keys deleted."""
        return self._unlink_matching(f"{_glob_escape(self.namespace)}:*", lambda key: True)

    @_translate_errors
    def clear_old_formats(self) -> int:
        """Delete keys of this namespace written in other format versions; returns keys deleted."""
        current = self.prefix.encode()
        pattern = f"{_glob_escape(self.namespace)}:v*"
        return self._unlink_matching(pattern, lambda key: not key.startswith(current))

    def _unlink_matching(self, pattern: str, keep: Callable[[bytes], bool]) -> int:
        # SCAN, not KEYS: KEYS blocks the server for the whole keyspace walk.
        deleted, batch = 0, []
        for key in self._client.scan_iter(match=pattern, count=1000):
            if keep(key):
                batch.append(key)
            if len(batch) >= 1000:
                deleted += self._client.unlink(*batch)
                batch = []
        if batch:
            deleted += self._client.unlink(*batch)
        return deleted


def _encode_chunk(chunk: MediaChunk, key: str) -> dict[str, str | bytes]:
    """The stored record of a chunk: latents as little-endian fp16 bytes plus shape and times."""
    if not (math.isfinite(chunk.t_start) and math.isfinite(chunk.t_end)) or chunk.t_end < chunk.t_start:
        raise StateStoreError(
            f"window {key} has times [{chunk.t_start}, {chunk.t_end}] s; need finite start <= end"
        )
    latents = np.asarray(chunk.latents)
    if latents.ndim != 2:
        raise StateStoreError(f"latents for {key} must be 2-D [R, d], got shape {latents.shape}")
    if not np.isfinite(latents).all():
        raise StateStoreError(f"latents for {key} contain NaN or inf; refusing to cache them")
    peak = float(np.abs(latents).max()) if latents.size else 0.0
    if peak > _FLOAT16_MAX:
        raise StateStoreError(f"latents for {key} reach {peak:g}, beyond float16's {_FLOAT16_MAX:g}")
    return {
        "fmt": str(FORMAT_VERSION),
        "dtype": LATENT_DTYPE,
        "shape": ",".join(str(n) for n in latents.shape),
        "t_start": repr(float(chunk.t_start)),
        "t_end": repr(float(chunk.t_end)),
        "latents": latents.astype(_WIRE_DTYPES[LATENT_DTYPE]).tobytes(),
    }


def _decode_chunk(source_id: str, index: int, key: str, record: dict[bytes, bytes]) -> MediaChunk:
    """Rebuild a chunk from its record, checking dtype, shape and byte length agree."""
    try:
        dtype_name = record[b"dtype"].decode()
        shape = tuple(int(n) for n in record[b"shape"].decode().split(","))
        t_start, t_end = float(record[b"t_start"]), float(record[b"t_end"])
        payload = record[b"latents"]
    except (KeyError, ValueError) as error:
        raise StateStoreError(f"corrupt chunk record at {key}: {error!r}") from error
    wire = _WIRE_DTYPES.get(dtype_name)
    if wire is None:
        raise StateStoreError(f"chunk record at {key} has unknown dtype {dtype_name!r}")
    if len(shape) != 2 or min(shape) < 0:
        raise StateStoreError(f"chunk record at {key} has shape {shape}, expected [R, d]")
    expected = shape[0] * shape[1] * wire.itemsize
    if len(payload) != expected:
        raise StateStoreError(
            f"chunk record at {key} holds {len(payload)} bytes but shape {shape} of {dtype_name} "
            f"needs {expected}; the entry is corrupt, clear the source and re-encode it"
        )
    # Copy: frombuffer views the immutable bytes, and callers (torch.from_numpy) want writable arrays.
    latents = np.frombuffer(payload, dtype=wire).reshape(shape).astype(np.float16, copy=True)
    return MediaChunk(source_id=source_id, index=index, t_start=t_start, t_end=t_end, latents=latents)


def _glob_escape(text: str) -> str:
    """``text`` with SCAN MATCH's glob characters escaped."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
