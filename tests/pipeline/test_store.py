"""RedisStateStore against a real server (tests/conftest.py starts one per session)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import redis

from heron.errors import StateStoreError, TimeRangeError
from heron.pipeline.store import FORMAT_VERSION, RedisStateStore, settings_fingerprint
from heron.pipeline.types import MediaChunk

pytestmark = pytest.mark.integration

R, D = 4, 8  # tiny [R, d] latents keep every test fast


def make_chunk(source_id: str, index: int, t_start: float, t_end: float, seed: int = 0) -> MediaChunk:
    latents = np.random.default_rng(seed + index).standard_normal((R, D)).astype(np.float32)
    return MediaChunk(source_id=source_id, index=index, t_start=t_start, t_end=t_end, latents=latents)


def raw(store: RedisStateStore) -> redis.Redis:
    """A plain client on the store's server, to write entries by hand."""
    return store._client


# --- window latents -----------------------------------------------------------------------------


def test_chunk_round_trip_keeps_fp16_precision(store):
    chunk = make_chunk("video-a", 3, 6.0, 7.5)
    store.put_chunk(chunk)
    got = store.get_chunk("video-a", 3)
    assert got is not None
    assert (got.source_id, got.index, got.t_start, got.t_end) == ("video-a", 3, 6.0, 7.5)
    assert got.latents.dtype == np.float16 and got.latents.shape == (R, D)
    np.testing.assert_array_equal(got.latents, chunk.latents.astype(np.float16))
    np.testing.assert_allclose(got.latents, chunk.latents, rtol=1e-3, atol=1e-3)
    assert got.latents.flags.writeable


def test_missing_chunk_is_none(store):
    assert store.get_chunk("nothing", 0) is None
    assert store.source_info("nothing") is None
    assert not store.has_source("nothing")


def test_chunks_in_range_returns_overlapping_windows_in_time_order(store):
    for index in reversed(range(10)):  # written out of order on purpose
        store.put_chunk(make_chunk("video-a", index, 2.0 * index, 2.0 * index + 1.5))
    got = store.chunks_in_range("video-a", 3.0, 7.0)
    # windows [2, 3.5], [4, 5.5], [6, 7.5] overlap [3, 7]; [0, 1.5] and [8, 9.5] do not
    assert [c.index for c in got] == [1, 2, 3]
    assert [c.index for c in store.chunks_in_range("video-a", 3.6, 3.9)] == []
    assert [c.index for c in store.chunks_in_range("video-a", 0.0, 100.0)] == list(range(10))
    assert store.chunks_in_range("video-a", 50.0, 60.0) == []
    assert store.chunks_in_range("unknown", 0.0, 1.0) == []


def test_window_spans_list_times_without_latents_and_get_chunks_fetches_a_choice(store):
    for index in range(6):
        store.put_chunk(make_chunk("video-a", index, 2.0 * index, 2.0 * index + 1.5))
    assert store.window_spans("video-a", 3.0, 7.0) == [(1, 2.0, 3.5), (2, 4.0, 5.5), (3, 6.0, 7.5)]
    assert store.window_spans("video-a", 3.6, 3.9) == []
    chosen = store.get_chunks("video-a", [5, 0, 42])  # in the order asked, absent ones skipped
    assert [(c.index, c.t_start) for c in chosen] == [(5, 10.0), (0, 0.0)]


def test_chunks_in_range_finds_a_long_window_that_starts_early(store):
    store.put_chunk(make_chunk("video-a", 0, 0.0, 30.0))  # one long window
    store.put_chunk(make_chunk("video-a", 1, 30.0, 31.0))
    assert [c.index for c in store.chunks_in_range("video-a", 20.0, 21.0)] == [0]


def test_chunks_in_range_rejects_inverted_range(store):
    with pytest.raises(TimeRangeError):
        store.chunks_in_range("video-a", 5.0, 1.0)


def test_source_info_and_completion(store):
    for index in range(3):
        store.put_chunk(make_chunk("video-a", index, index * 2.0, index * 2.0 + 2.0))
    info = store.source_info("video-a")
    assert info is not None
    assert info.cached_windows == 3 and not info.complete and info.max_window_s == 2.0
    assert info.fingerprint == store.fingerprint and info.settings["model_id"] == "tiny-test"
    assert not store.has_source("video-a")  # partial caches must not skip decoding
    assert info.name is None
    store.set_source_info("video-a", duration_s=6.0, n_windows=3, complete=True, name="/videos/a.mp4")
    info = store.source_info("video-a")
    assert (info.duration_s, info.n_windows, info.complete, info.name) == (6.0, 3, True, "/videos/a.mp4")
    assert store.has_source("video-a")
    assert store.list_sources() == ["video-a"]


def test_other_encoder_settings_do_not_see_cached_latents(store):
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    store.set_source_info("video-a", complete=True)
    other = store.with_settings({"model_id": "tiny-test", "fps": 2.0, "window_frames": 4})
    assert other.fingerprint != store.fingerprint
    assert other.get_chunk("video-a", 0) is None
    assert not other.has_source("video-a") and other.list_sources() == []
    assert store.get_chunk("video-a", 0) is not None


def test_fingerprint_ignores_key_order():
    assert settings_fingerprint({"a": 1, "b": 2}) == settings_fingerprint({"b": 2, "a": 1})
    assert settings_fingerprint({"fps": 1.0}) != settings_fingerprint({"fps": 2.0})


def test_clear_source_leaves_other_sources_intact(store):
    for source in ("video-a", "video-b"):
        for index in range(3):
            store.put_chunk(make_chunk(source, index, float(index), index + 1.0))
    assert store.clear_source("video-a") == 3 + 3  # chunks + meta, times, span
    assert store.get_chunk("video-a", 0) is None and store.source_info("video-a") is None
    assert store.list_sources() == ["video-b"]
    assert [c.index for c in store.chunks_in_range("video-b", 0.0, 10.0)] == [0, 1, 2]


def test_corrupt_latent_bytes_raise_naming_the_key(store):
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    key = store._chunk_key("video-a", 0)
    raw(store).hset(key, "latents", b"\x00" * 10)  # shape says 4x8 fp16 = 64 bytes
    with pytest.raises(StateStoreError, match=key) as caught:
        store.get_chunk("video-a", 0)
    assert "10 bytes" in str(caught.value) and "64" in str(caught.value)


@pytest.mark.parametrize(
    "latents, reason",
    [
        (np.full((R, D), np.nan, np.float32), "NaN"),
        (np.full((R, D), 1e6, np.float32), "float16"),
        (np.zeros((2, R, D), np.float32), "2-D"),
    ],
)
def test_put_chunk_refuses_latents_fp16_cannot_hold(store, latents, reason):
    with pytest.raises(StateStoreError, match=reason):
        store.put_chunk(MediaChunk("video-a", 0, 0.0, 1.0, latents))
    assert store.get_chunk("video-a", 0) is None


def test_put_chunk_refuses_inverted_window_times(store):
    with pytest.raises(StateStoreError, match="start <= end"):
        store.put_chunk(make_chunk("video-a", 0, 2.0, 1.0))


def test_store_without_encoder_settings_still_does_dialogue(redis_url):
    plain = RedisStateStore(redis_url, namespace="heron-test-plain")
    try:
        with pytest.raises(StateStoreError, match="encoder_settings"):
            plain.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
        plain.append_turn("s", "user", "hi")
        assert [t.text for t in plain.get_dialogue("s")] == ["hi"]
    finally:
        plain.clear_all()


# --- old formats ------------------------------------------------------------------------------------


def test_chunk_without_format_field_is_a_cache_miss_then_rewritten(store):
    """A chunk written by hand in an older layout (no fmt, float32 bytes) must not crash anything."""
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    store.set_source_info("video-a", n_windows=2, complete=True)
    old = np.ones((R, D), np.float32)
    key = store._chunk_key("video-a", 1)
    legacy = {"shape": f"{R},{D}", "t_start": "1.0", "t_end": "2.0", "latents": old.tobytes()}
    raw(store).hset(key, mapping=legacy)
    raw(store).zadd(store._source_key("video-a", "times"), {"1": 1.0})

    assert [c.index for c in store.chunks_in_range("video-a", 0.0, 5.0)] == [0]  # old one skipped
    assert store.get_chunk("video-a", 1) is None
    assert not raw(store).exists(key)
    assert not store.has_source("video-a")  # so the pipeline re-encodes the source

    store.put_chunk(make_chunk("video-a", 1, 1.0, 2.0))  # the re-encode rewrites it
    assert [c.index for c in store.chunks_in_range("video-a", 0.0, 5.0)] == [0, 1]


def test_source_metadata_in_another_format_is_a_cache_miss(store):
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    raw(store).hset(store._source_key("video-a", "meta"), mapping={"fmt": "0", "complete": "1"})
    assert store.source_info("video-a") is None
    assert not store.has_source("video-a")
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    info = store.source_info("video-a")
    assert info is not None and not info.complete  # the old complete flag did not survive


def test_keys_of_an_older_format_version_are_invisible_and_purgeable(store):
    old_key = f"{store.namespace}:v{FORMAT_VERSION - 1}:src:{store.fingerprint}:video-a:chunk:0"
    raw(store).hset(old_key, mapping={"latents": b"old", "shape": "1"})
    assert store.get_chunk("video-a", 0) is None
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    assert store.clear_old_formats() == 1
    assert not raw(store).exists(old_key)
    assert store.get_chunk("video-a", 0) is not None


# --- dialogue, jobs, alerts ------------------------------------------------------------------------


def test_dialogue_keeps_order_and_last_n(store):
    for i in range(5):
        store.append_turn("session-1", "user" if i % 2 == 0 else "assistant", f"turn {i}", {"i": i})
    store.append_turn("session-2", "user", "elsewhere")
    turns = store.get_dialogue("session-1")
    assert [t.text for t in turns] == [f"turn {i}" for i in range(5)]
    assert [t.role for t in turns[:2]] == ["user", "assistant"] and turns[4].meta == {"i": 4}
    assert turns[0].at <= turns[-1].at
    assert [t.text for t in store.get_dialogue("session-1", last_n=2)] == ["turn 3", "turn 4"]
    assert store.get_dialogue("session-1", last_n=0) == []
    store.clear_session("session-1")
    assert store.get_dialogue("session-1") == []
    assert len(store.get_dialogue("session-2")) == 1


def test_job_lifecycle(store):
    job_id = store.create_job("encode", {"source": "video-a"})
    job = store.get_job(job_id)
    assert (job.kind, job.params, job.status, job.progress, job.result, job.error) == (
        "encode", {"source": "video-a"}, "queued", 0.0, None, None)
    store.update_job(job_id, status="running", progress=0.5)
    done = store.update_job(job_id, status="done", progress=1.0, result={"windows": 12})
    assert (done.status, done.progress, done.result) == ("done", 1.0, {"windows": 12})
    assert store.get_job(job_id) == done
    failed = store.update_job(store.create_job("answer"), status="failed", error="model missing")
    assert failed.error == "model missing"


def test_unknown_job_is_none_and_cannot_be_updated(store):
    assert store.get_job("nope") is None
    with pytest.raises(StateStoreError, match="nope"):
        store.update_job("nope", status="running")
    assert store.get_job("nope") is None  # the failed update left nothing behind
    with pytest.raises(ValueError):
        store.update_job(store.create_job("encode"), status="finished")


def test_alerts_are_listed_in_order_with_a_cursor(store):
    ids = [store.push_alert("cam-1", {"label": f"person {i}", "t": float(i)}) for i in range(3)]
    store.push_alert("cam-2", {"label": "car"})
    alerts = store.list_alerts("cam-1")
    assert [a.alert_id for a in alerts] == ids
    assert alerts[1].data == {"label": "person 1", "t": 1.0} and alerts[0].at > 0
    assert [a.data["label"] for a in store.list_alerts("cam-1", since=ids[0])] == ["person 1", "person 2"]
    assert store.list_alerts("cam-1", since=ids[-1]) == []
    assert [a.data["label"] for a in store.list_alerts("cam-2")] == ["car"]


# --- housekeeping and connection ---------------------------------------------------------------------


def test_clear_all_deletes_only_this_namespace(store, redis_url):
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    store.append_turn("s", "user", "hi")
    store.push_alert("cam", {"x": 1})
    foreign = redis.Redis.from_url(redis_url)
    foreign.set("not-heron:key", "keep")
    try:
        assert store.clear_all() >= 5
        assert store.list_sources() == [] and store.get_dialogue("s") == []
        assert foreign.get("not-heron:key") == b"keep"
    finally:
        foreign.delete("not-heron:key")


def test_store_built_from_url_pickles(store):
    store.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.fingerprint == store.fingerprint and copy.prefix == store.prefix
    assert copy.get_chunk("video-a", 0) is not None


def test_unreachable_server_raises_naming_the_url():
    dead = RedisStateStore("redis://:secret@127.0.0.1:1/0", encoder_settings={"m": 1})
    with pytest.raises(StateStoreError, match=r"127\.0\.0\.1:1") as caught:
        dead.get_chunk("video-a", 0)
    assert "secret" not in str(caught.value)
