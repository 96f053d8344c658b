"""Window latents in Redis: each window's visual tokens (fp16) with its times, indexed per source.

Latents are cached per ``source key = (content id, settings fingerprint)``: the fingerprint hashes
the encoder settings (model id, fps, window size, ...), so a different model or sampling never
gets another's latents. Per source (one hash tag, so one cluster slot):

    src:{fp:source}:chunk:<i>   hash: fp16 latent bytes, shape, dtype, t_start, t_end, fmt
    src:{fp:source}:times       sorted set: window index -> t_start (range queries)
    src:{fp:source}:ends        hash: window index -> t_end (range queries read no chunk hash)
    src:{fp:source}:span        sorted set: "max" -> the longest window (widens range queries)
    src:{fp:source}:meta        hash: settings, duration, n_windows, complete, name, fmt
    src:{fp:source}:damage      hash: start -> end (s) of each span decoding had to skip
    src:{fp:source}:emb         hash: window index -> fp16 bytes of its retrieval embedding [p]
    src:{fp:source}:ver         string: a random token every write to the index replaces, so a
                                store's copies of range reads know when they are stale (index_cache)

and two namespace-wide indexes, ``sources:<fp>`` (the source ids of a fingerprint) and
``fingerprints`` (fingerprint -> its settings), so every cached source can be listed whatever
settings made it. A record with a missing or foreign ``fmt`` is dropped and its source marked
incomplete, so the pipeline re-encodes and rewrites it; that never raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heron.errors import StateStoreError, TimeRangeError
from heron.state.connection import FORMAT_VERSION, RedisConnection, decode_fields, redis_errors_translated
from heron.state.index_cache import IndexCache, IndexRead
from heron.types import MediaChunk

logger = logging.getLogger(__name__)

# KEYS: span, times, emb, ends, ver (one source: one hash tag); ARGV: start s, end s, the chunk
# key prefix, "1" to return embeddings, the index version the caller holds a copy of (or "").
# Returns {version} when that copy is current, else {version, flat}: the windows with a frame in
# [start, end) by start time, flat: index, t_start, t_end[, embedding or false] each. One round
# trip and a few commands per 512 windows whatever the source length: start times come with the
# index, ends and embeddings in one HMGET per batch. A window cached before the ends hash existed
# reads its end from its chunk hash (which shares the source's slot: cluster-safe in practice, if
# not by the book).
_WINDOW_SPANS = """
local version = redis.call('GET', KEYS[5]) or ''
if version ~= '' and version == ARGV[5] then return {version} end
local longest = tonumber(redis.call('ZSCORE', KEYS[1], 'max') or '0')
local start = tonumber(ARGV[1])
-- (a number passed to redis.call becomes text at 14 digits: widen by 1 us, the t_end test is exact)
local found = redis.call('ZRANGEBYSCORE', KEYS[2], start - longest - 1e-6, '(' .. ARGV[2], 'WITHSCORES')
local out = {}
for first = 1, #found, 1024 do
  local members = {}
  for k = first, math.min(first + 1022, #found - 1), 2 do members[#members + 1] = found[k] end
  local ends = redis.call('HMGET', KEYS[4], unpack(members))
  local embs = ARGV[4] == '1' and redis.call('HMGET', KEYS[3], unpack(members)) or {}
  for j, member in ipairs(members) do
    local t_end = ends[j] or redis.call('HGET', ARGV[3] .. member, 't_end')
    if t_end and tonumber(t_end) >= start then
      out[#out + 1] = member
      out[#out + 1] = found[first + 2 * j - 1]
      out[#out + 1] = t_end
      if ARGV[4] == '1' then out[#out + 1] = embs[j] end
    end
  end
end
return {version, out}
"""

LATENT_DTYPE = "float16"  # what latents are stored as; they come back as this dtype
_WIRE_DTYPES = {"float16": np.dtype("<f2")}  # stored dtype name -> explicit little-endian layout
_FLOAT16_MAX = float(np.finfo(np.float16).max)


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
    damaged: list[tuple[float, float]] = field(default_factory=list)  # spans decoding skipped (s), by start


class LatentStore:
    """Reads and writes window latents under one encoder-settings fingerprint.

    db: the shared connection. encoder_settings: the settings whose fingerprint keys the cache.
    """

    def __init__(self, db: RedisConnection, encoder_settings: Mapping[str, Any]):
        self.db = db
        self.settings = dict(encoder_settings)
        self.fingerprint = settings_fingerprint(self.settings)
        self.index_cache = IndexCache()  # recent range reads, served while the source's index is unchanged

    def with_settings(self, encoder_settings: Mapping[str, Any]) -> LatentStore:
        """A store on the same connection whose cache is keyed by other encoder settings."""
        return LatentStore(self.db, encoder_settings)

    # --- keys -----------------------------------------------------------------------------------

    def _key(self, source_id: str, part: str | int, *more: str | int) -> str:
        return self.db.key("src", f"{self.fingerprint}:{source_id}", part, *more)

    def _chunk_key(self, source_id: str, index: int) -> str:
        return self._key(source_id, "chunk", index)

    def _sources_key(self, fingerprint: str | None = None) -> str:
        return self.db.index_key(f"sources:{fingerprint or self.fingerprint}")

    # --- writes ---------------------------------------------------------------------------------

    def put_chunk(self, chunk: MediaChunk) -> None:
        """Store one window's latents (as fp16) and index it by start time."""
        self.put_chunks([chunk])

    @redis_errors_translated
    def put_chunks(self, chunks: Iterable[MediaChunk]) -> None:
        """Store windows (any sources) atomically per source, in one round trip for all of them."""
        chunks = list(chunks)
        if not chunks:
            return
        records = [(chunk, _encode_chunk(chunk, self._chunk_key(chunk.source_id, chunk.index))) for chunk in chunks]
        pipe = self.db.client.pipeline(transaction=True)
        for chunk, record in records:
            pipe.hset(self._chunk_key(chunk.source_id, chunk.index), mapping=record)
            pipe.zadd(self._key(chunk.source_id, "times"), {str(chunk.index): chunk.t_start})
            pipe.hset(self._key(chunk.source_id, "ends"), str(chunk.index), record["t_end"])
            # ZADD GT keeps the longest window atomically; range queries widen their search by it.
            pipe.zadd(self._key(chunk.source_id, "span"), {"max": chunk.t_end - chunk.t_start}, gt=True)
            if chunk.embedding is not None:
                pipe.hset(self._key(chunk.source_id, "emb"), str(chunk.index), _encode_embedding(chunk, record))
        for source_id in {chunk.source_id for chunk in chunks}:
            pipe.hset(self._key(source_id, "meta"), mapping=self._meta_base(source_id))
            self._new_version(pipe, source_id)
        pipe.execute()
        self._register({chunk.source_id for chunk in chunks})

    def _new_version(self, pipe: Any, source_id: str) -> None:
        """Queue a fresh index version for ``source_id`` (in the transaction that changes its index)."""
        pipe.set(self._key(source_id, "ver"), uuid.uuid4().hex)

    def _register(self, source_ids: set[str]) -> None:
        # The indexes live in other cluster slots than the sources, so they are written after the
        # per-source transaction (idempotently); a crash in between leaves a source that is cached
        # but unlisted until its next write, never a listed source without data.
        pipe = self.db.client.pipeline(transaction=False)
        pipe.sadd(self._sources_key(), *source_ids)
        pipe.hset(self.db.index_key("fingerprints"), self.fingerprint, json.dumps(self.settings, sort_keys=True))
        pipe.execute()

    @redis_errors_translated
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
        self.db.client.hset(self._key(source_id, "meta"), mapping=fields)
        self._register({source_id})

    def _meta_base(self, source_id: str) -> dict[str, str]:
        return {
            "fmt": str(FORMAT_VERSION),
            "source_id": source_id,
            "fingerprint": self.fingerprint,
            "settings": json.dumps(self.settings, sort_keys=True),
            "updated_at": repr(time.time()),
        }

    # --- reads ----------------------------------------------------------------------------------

    @redis_errors_translated
    def get_chunk(self, source_id: str, index: int) -> MediaChunk | None:
        """The cached window ``index`` of ``source_id``, or None if absent (or in a foreign format)."""
        key = self._chunk_key(source_id, index)
        return self._decode_or_drop(source_id, index, key, self.db.client.hgetall(key))

    @redis_errors_translated
    def get_chunks(self, source_id: str, indices: list[int]) -> list[MediaChunk]:
        """The cached windows ``indices`` of ``source_id`` in one round trip (absent ones skipped)."""
        pipe = self.db.client.pipeline(transaction=False)
        for index in indices:
            pipe.hgetall(self._chunk_key(source_id, index))
        chunks = []
        for index, record in zip(indices, pipe.execute()):
            chunk = self._decode_or_drop(source_id, index, self._chunk_key(source_id, index), record)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def chunks_in_range(self, source_id: str, start_s: float, end_s: float) -> list[MediaChunk]:
        """Cached windows with a frame in [start_s, end_s) seconds, ordered by start time."""
        return self.get_chunks(source_id, [index for index, _, _ in self.window_spans(source_id, start_s, end_s)])

    def window_spans(self, source_id: str, start_s: float, end_s: float) -> list[tuple[int, float, float]]:
        """(index, t_start, t_end) of the cached windows with a frame in [start_s, end_s), by start
        time, without reading their latents: choose from these, then ``get_chunks`` the chosen ones.
        The end is open, as every range of the pipeline's: ``end_s`` = 2.0 s leaves out the window
        whose first frame is at 2.0 s (t_start, t_end: its first and last frame)."""
        return self._spans(source_id, start_s, end_s, with_embeddings=False)[0]

    def spans_and_embeddings(
        self, source_id: str, start_s: float, end_s: float
    ) -> tuple[list[tuple[int, float, float]], np.ndarray | None]:
        """``window_spans`` and, in the same round trip, the windows' retrieval embeddings: float32
        [n, p] in their order, or None when any has none (a model without retrieval, or windows
        cached before it had one)."""
        return self._spans(source_id, start_s, end_s, with_embeddings=True)

    @redis_errors_translated
    def embeddings(self, source_id: str, indices: list[int]) -> np.ndarray | None:
        """float32 [n, p]: the retrieval embeddings of windows ``indices`` (in that order); None
        when any of them has none."""
        if not indices:
            return None
        return _stack_embeddings(self.db.client.hmget(self._key(source_id, "emb"), [str(i) for i in indices]))

    @redis_errors_translated
    def _spans(
        self, source_id: str, start_s: float, end_s: float, *, with_embeddings: bool
    ) -> tuple[list[tuple[int, float, float]], np.ndarray | None]:
        if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s > end_s:
            raise TimeRangeError(f"invalid time range [{start_s}, {end_s}] s: need finite start <= end")
        # A window has a frame in the range iff t_start < end and t_end >= start; t_end <= t_start +
        # longest, so every candidate has t_start in [start - longest, end) and the index answers that.
        cache_key = (source_id, float(start_s), float(end_s), with_embeddings)
        copy = self.index_cache.get(cache_key)
        keys = [self._key(source_id, part) for part in ("span", "times", "emb", "ends", "ver")]
        prefix = self._key(source_id, "chunk", "")  # "...:chunk:", the script appends each index
        args = [repr(float(start_s)), repr(float(end_s)), prefix, "1" if with_embeddings else "0"]
        reply = self.db.script("window_spans", _WINDOW_SPANS)(keys=keys, args=[*args, copy.version if copy else ""])
        version = reply[0].decode()
        if copy is not None and len(reply) == 1:
            self.index_cache.hit()
            return list(copy.spans), copy.embeddings
        flat = reply[1]
        step = 4 if with_embeddings else 3
        spans = [(int(flat[k]), float(flat[k + 1]), float(flat[k + 2])) for k in range(0, len(flat), step)]
        found = _stack_embeddings(flat[3::4]) if with_embeddings and spans else None
        if version:  # (a source written before versions existed has none: read it every time)
            self.index_cache.put(cache_key, IndexRead(version, tuple(spans), found))
        return spans, found

    @redis_errors_translated
    def cached_indices(self, source_id: str) -> set[int]:
        """Indices of every cached window of ``source_id`` (no latents read)."""
        return {int(member) for member in self.db.client.zrange(self._key(source_id, "times"), 0, -1)}

    @redis_errors_translated
    def source_info(self, source_id: str) -> SourceInfo | None:
        """What is cached for ``source_id`` under this store's encoder settings; None if nothing."""
        pipe = self.db.client.pipeline(transaction=True)
        pipe.hgetall(self._key(source_id, "meta"))
        pipe.zcard(self._key(source_id, "times"))
        pipe.zscore(self._key(source_id, "span"), "max")
        pipe.hgetall(self._key(source_id, "damage"))
        meta, cached, longest, damage = pipe.execute()
        if not meta:
            return None
        meta = decode_fields(meta)
        if meta.get("fmt") != str(FORMAT_VERSION):
            logger.warning(
                "source %s: metadata in format %r, expected %d; dropping it (cache miss)",
                source_id,
                meta.get("fmt"),
                FORMAT_VERSION,
            )
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
                damaged=sorted((float(a), float(b)) for a, b in damage.items()),
            )
        except (KeyError, ValueError) as error:
            raise StateStoreError(
                f"corrupt source metadata at {self._key(source_id, 'meta')}: {error!r}; run clear_source({source_id!r})"
            ) from error

    def has_source(self, source_id: str) -> bool:
        """True when every window of ``source_id`` is cached for these settings (no decode needed)."""
        info = self.source_info(source_id)
        return info is not None and info.complete

    @redis_errors_translated
    def list_sources(self) -> list[str]:
        """Content ids with anything cached under this store's encoder settings, sorted."""
        return sorted(member.decode() for member in self.db.client.smembers(self._sources_key()))

    @redis_errors_translated
    def every_source(self) -> list[SourceInfo]:
        """What is cached for every source under every encoder fingerprint (``heron cache ls``)."""
        out = []
        for fingerprint, settings in self.db.client.hgetall(self.db.index_key("fingerprints")).items():
            store = LatentStore(self.db, json.loads(settings))
            if store.fingerprint != fingerprint.decode():
                continue  # written by other code (a hand edit): its keys cannot be derived
            out += [info for info in map(store.source_info, store.list_sources()) if info is not None]
        return sorted(out, key=lambda info: (info.name or "", info.source_id, info.fingerprint))

    # --- deletes --------------------------------------------------------------------------------

    @redis_errors_translated
    def add_damage(self, source_id: str, spans: Iterable[tuple[float, float]]) -> None:
        """Record spans (start, end seconds) the decoder had to skip: answers about them warn."""
        fields = {repr(float(start)): repr(float(end)) for start, end in spans}
        if fields:
            self.db.client.hset(self._key(source_id, "damage"), mapping=fields)

    @redis_errors_translated
    def damaged_spans(self, source_id: str, start_s: float = 0.0, end_s: float = math.inf) -> list[tuple[float, float]]:
        """The recorded damaged spans overlapping [start_s, end_s], by start."""
        found = self.db.client.hgetall(self._key(source_id, "damage"))
        spans = sorted((float(a), float(b)) for a, b in found.items())
        return [(a, b) for a, b in spans if a <= end_s and b >= start_s]

    @redis_errors_translated
    def clear_source(self, source_id: str) -> int:
        """Delete everything cached for ``source_id`` under these settings; returns keys deleted."""
        client = self.db.client
        members = client.zrange(self._key(source_id, "times"), 0, -1)
        keys = [self._chunk_key(source_id, int(member)) for member in members]
        keys += [self._key(source_id, part) for part in ("meta", "times", "ends", "span", "damage", "emb", "ver")]
        deleted = client.unlink(*keys)
        client.srem(self._sources_key(), source_id)
        return int(deleted)

    @redis_errors_translated
    def last_window(self, source_id: str) -> tuple[int, float] | None:
        """(index, t_start) of the window that starts last, or None when nothing is cached."""
        found = self.db.client.zrevrange(self._key(source_id, "times"), 0, 0, withscores=True)
        return (int(found[0][0]), float(found[0][1])) if found else None

    @redis_errors_translated
    def windows_to_retire(self, source_id: str, *, before_s: float | None = None, keep: int | None = None) -> list[int]:
        """Indices of the windows starting before ``before_s`` (stream time), and of all but the
        newest ``keep``: what a live stream's retention drops."""
        times = self._key(source_id, "times")
        old = set()
        if before_s is not None:
            old |= {int(m) for m in self.db.client.zrangebyscore(times, "-inf", f"({before_s}")}
        if keep is not None:
            surplus = self.db.client.zcard(times) - keep
            if surplus > 0:
                old |= {int(m) for m in self.db.client.zrange(times, 0, surplus - 1)}
        return sorted(old)

    @redis_errors_translated
    def drop_windows(self, source_id: str, indices: Iterable[int]) -> int:
        """Delete the given windows of a source (retention of live streams); returns windows deleted."""
        indices = [int(i) for i in indices]
        if not indices:
            return 0
        pipe = self.db.client.pipeline(transaction=True)
        pipe.unlink(*[self._chunk_key(source_id, i) for i in indices])
        pipe.zrem(self._key(source_id, "times"), *[str(i) for i in indices])
        pipe.hdel(self._key(source_id, "emb"), *[str(i) for i in indices])
        pipe.hdel(self._key(source_id, "ends"), *[str(i) for i in indices])
        self._new_version(pipe, source_id)
        deleted, *_ = pipe.execute()
        return int(deleted)

    def _decode_or_drop(self, source_id: str, index: int, key: str, record: dict[bytes, bytes]) -> MediaChunk | None:
        """Decode a chunk record; one in a foreign format is deleted and its source marked incomplete."""
        if not record:
            return None
        fmt = record.get(b"fmt", b"").decode(errors="replace")
        if fmt != str(FORMAT_VERSION):
            logger.warning(
                "%s is in format %r, expected %d; dropping it so the window is re-encoded",
                key,
                fmt or "(none)",
                FORMAT_VERSION,
            )
            pipe = self.db.client.pipeline(transaction=True)
            pipe.unlink(key)
            pipe.zrem(self._key(source_id, "times"), str(index))
            pipe.hdel(self._key(source_id, "ends"), str(index))
            pipe.hset(self._key(source_id, "meta"), "complete", "0")
            self._new_version(pipe, source_id)
            pipe.execute()
            return None
        return _decode_chunk(source_id, index, key, record)


def _encode_chunk(chunk: MediaChunk, key: str) -> dict[str, str | bytes]:
    """The stored record of a chunk: latents as little-endian fp16 bytes plus shape and times."""
    if not (math.isfinite(chunk.t_start) and math.isfinite(chunk.t_end)) or chunk.t_end < chunk.t_start:
        raise StateStoreError(f"window {key} has times [{chunk.t_start}, {chunk.t_end}] s; need finite start <= end")
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


def _encode_embedding(chunk: MediaChunk, key: str) -> bytes:
    embedding = np.asarray(chunk.embedding, dtype=np.float32)
    if embedding.ndim != 1 or not np.isfinite(embedding).all():
        raise StateStoreError(f"the embedding of {key} must be a finite 1-D vector, got shape {embedding.shape}")
    return embedding.astype(_WIRE_DTYPES[LATENT_DTYPE]).tobytes()


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


def _stack_embeddings(found: list[bytes | None]) -> np.ndarray | None:
    """float32 [n, p] from n stored fp16 embeddings; None when any is missing or they differ in size."""
    if not found or any(f is None for f in found) or len({len(f) for f in found}) != 1:
        return None
    return np.frombuffer(b"".join(found), dtype=_WIRE_DTYPES[LATENT_DTYPE]).reshape(len(found), -1).astype(np.float32)
