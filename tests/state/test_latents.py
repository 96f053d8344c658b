"""LatentStore against a real server (tests/conftest.py starts one per session)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import redis

from heron.errors import StateStoreError, TimeRangeError
from heron.state import FORMAT_VERSION, LatentStore, settings_fingerprint
from heron.types import MediaChunk

pytestmark = pytest.mark.integration

R, D = 4, 8  # tiny [R, d] latents keep every test fast


def make_chunk(source_id: str, index: int, t_start: float, t_end: float, seed: int = 0) -> MediaChunk:
    latents = np.random.default_rng(seed + index).standard_normal((R, D)).astype(np.float32)
    return MediaChunk(source_id=source_id, index=index, t_start=t_start, t_end=t_end, latents=latents)


def raw(latents: LatentStore) -> redis.Redis:
    """The latents's client, to write entries by hand."""
    return latents.db.client


# --- window latents -----------------------------------------------------------------------------


def test_chunk_round_trip_keeps_fp16_precision(latents):
    chunk = make_chunk("video-a", 3, 6.0, 7.5)
    latents.put_chunk(chunk)
    got = latents.get_chunk("video-a", 3)
    assert got is not None
    assert (got.source_id, got.index, got.t_start, got.t_end) == ("video-a", 3, 6.0, 7.5)
    assert got.latents.dtype == np.float16 and got.latents.shape == (R, D)
    np.testing.assert_array_equal(got.latents, chunk.latents.astype(np.float16))
    np.testing.assert_allclose(got.latents, chunk.latents, rtol=1e-3, atol=1e-3)
    assert got.latents.flags.writeable


def test_missing_chunk_is_none(latents):
    assert latents.get_chunk("nothing", 0) is None
    assert latents.source_info("nothing") is None
    assert not latents.has_source("nothing")


def test_chunks_in_range_returns_overlapping_windows_in_time_order(latents):
    for index in reversed(range(10)):  # written out of order on purpose
        latents.put_chunk(make_chunk("video-a", index, 2.0 * index, 2.0 * index + 1.5))
    got = latents.chunks_in_range("video-a", 3.0, 7.0)
    # windows [2, 3.5], [4, 5.5], [6, 7.5] overlap [3, 7]; [0, 1.5] and [8, 9.5] do not
    assert [c.index for c in got] == [1, 2, 3]
    assert [c.index for c in latents.chunks_in_range("video-a", 3.6, 3.9)] == []
    assert [c.index for c in latents.chunks_in_range("video-a", 0.0, 100.0)] == list(range(10))
    assert latents.chunks_in_range("video-a", 50.0, 60.0) == []
    assert latents.chunks_in_range("unknown", 0.0, 1.0) == []


def test_window_spans_list_times_without_latents_and_get_chunks_fetches_a_choice(latents):
    for index in range(6):
        latents.put_chunk(make_chunk("video-a", index, 2.0 * index, 2.0 * index + 1.5))
    assert latents.window_spans("video-a", 3.0, 7.0) == [(1, 2.0, 3.5), (2, 4.0, 5.5), (3, 6.0, 7.5)]
    assert latents.window_spans("video-a", 3.6, 3.9) == []
    # the end is open, as the pipeline's ranges: the window whose first frame is at 4.0 s is not in [0, 4)
    assert latents.window_spans("video-a", 0.0, 4.0) == [(0, 0.0, 1.5), (1, 2.0, 3.5)]
    chosen = latents.get_chunks("video-a", [5, 0, 42])  # in the order asked, absent ones skipped
    assert [(c.index, c.t_start) for c in chosen] == [(5, 10.0), (0, 0.0)]


def test_chunks_in_range_finds_a_long_window_that_starts_early(latents):
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 30.0))  # one long window
    latents.put_chunk(make_chunk("video-a", 1, 30.0, 31.0))
    assert [c.index for c in latents.chunks_in_range("video-a", 20.0, 21.0)] == [0]


def test_chunks_in_range_rejects_inverted_range(latents):
    with pytest.raises(TimeRangeError):
        latents.chunks_in_range("video-a", 5.0, 1.0)


def test_source_info_and_completion(latents):
    for index in range(3):
        latents.put_chunk(make_chunk("video-a", index, index * 2.0, index * 2.0 + 2.0))
    info = latents.source_info("video-a")
    assert info is not None
    assert info.cached_windows == 3 and not info.complete and info.max_window_s == 2.0
    assert info.fingerprint == latents.fingerprint and info.settings["model_id"] == "tiny-test"
    assert not latents.has_source("video-a")  # partial caches must not skip decoding
    assert info.name is None
    latents.set_source_info("video-a", duration_s=6.0, n_windows=3, complete=True, name="/videos/a.mp4")
    info = latents.source_info("video-a")
    assert (info.duration_s, info.n_windows, info.complete, info.name) == (6.0, 3, True, "/videos/a.mp4")
    assert latents.has_source("video-a")
    assert latents.list_sources() == ["video-a"]


def test_other_encoder_settings_do_not_see_cached_latents(latents):
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    latents.set_source_info("video-a", complete=True)
    other = latents.with_settings({"model_id": "tiny-test", "fps": 2.0, "window_frames": 4})
    assert other.fingerprint != latents.fingerprint
    assert other.get_chunk("video-a", 0) is None
    assert not other.has_source("video-a") and other.list_sources() == []
    assert latents.get_chunk("video-a", 0) is not None


def test_fingerprint_ignores_key_order():
    assert settings_fingerprint({"a": 1, "b": 2}) == settings_fingerprint({"b": 2, "a": 1})
    assert settings_fingerprint({"fps": 1.0}) != settings_fingerprint({"fps": 2.0})


def test_clear_source_leaves_other_sources_intact(latents):
    for source in ("video-a", "video-b"):
        for index in range(3):
            latents.put_chunk(make_chunk(source, index, float(index), index + 1.0))
    assert latents.clear_source("video-a") == 3 + 5  # chunks + meta, times, ends, span, ver
    assert latents.get_chunk("video-a", 0) is None and latents.source_info("video-a") is None
    assert latents.list_sources() == ["video-b"]
    assert [c.index for c in latents.chunks_in_range("video-b", 0.0, 10.0)] == [0, 1, 2]


def test_corrupt_latent_bytes_raise_naming_the_key(latents):
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    key = latents._chunk_key("video-a", 0)
    raw(latents).hset(key, "latents", b"\x00" * 10)  # shape says 4x8 fp16 = 64 bytes
    with pytest.raises(StateStoreError, match=key) as caught:
        latents.get_chunk("video-a", 0)
    assert "10 bytes" in str(caught.value) and "64" in str(caught.value)


@pytest.mark.parametrize(
    "values, reason",
    [
        (np.full((R, D), np.nan, np.float32), "NaN"),
        (np.full((R, D), 1e6, np.float32), "float16"),
        (np.zeros((2, R, D), np.float32), "2-D"),
    ],
)
def test_put_chunk_refuses_latents_fp16_cannot_hold(latents, values, reason):
    with pytest.raises(StateStoreError, match=reason):
        latents.put_chunk(MediaChunk("video-a", 0, 0.0, 1.0, values))
    assert latents.get_chunk("video-a", 0) is None


def test_put_chunk_refuses_inverted_window_times(latents):
    with pytest.raises(StateStoreError, match="start <= end"):
        latents.put_chunk(make_chunk("video-a", 0, 2.0, 1.0))


# --- old formats ------------------------------------------------------------------------------------


def test_chunk_without_format_field_is_a_cache_miss_then_rewritten(latents):
    """A chunk written by hand in an older layout (no fmt, float32 bytes) must not crash anything."""
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    latents.set_source_info("video-a", n_windows=2, complete=True)
    old = np.ones((R, D), np.float32)
    key = latents._chunk_key("video-a", 1)
    legacy = {"shape": f"{R},{D}", "t_start": "1.0", "t_end": "2.0", "latents": old.tobytes()}
    raw(latents).hset(key, mapping=legacy)
    raw(latents).zadd(latents._key("video-a", "times"), {"1": 1.0})

    assert [c.index for c in latents.chunks_in_range("video-a", 0.0, 5.0)] == [0]  # old one skipped
    assert latents.get_chunk("video-a", 1) is None
    assert not raw(latents).exists(key)
    assert not latents.has_source("video-a")  # so the pipeline re-encodes the source

    latents.put_chunk(make_chunk("video-a", 1, 1.0, 2.0))  # the re-encode rewrites it
    assert [c.index for c in latents.chunks_in_range("video-a", 0.0, 5.0)] == [0, 1]


def test_source_metadata_in_another_format_is_a_cache_miss(latents):
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    raw(latents).hset(latents._key("video-a", "meta"), mapping={"fmt": "0", "complete": "1"})
    assert latents.source_info("video-a") is None
    assert not latents.has_source("video-a")
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    info = latents.source_info("video-a")
    assert info is not None and not info.complete  # the old complete flag did not survive


def test_keys_of_an_older_format_version_are_invisible_and_purgeable(latents):
    old_key = f"{latents.db.namespace}:v{FORMAT_VERSION - 1}:src:{latents.fingerprint}:video-a:chunk:0"
    raw(latents).hset(old_key, mapping={"latents": b"old", "shape": "1"})
    assert latents.get_chunk("video-a", 0) is None
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    assert latents.db.clear_old_formats() == 1
    assert not raw(latents).exists(old_key)
    assert latents.get_chunk("video-a", 0) is not None


def test_every_source_lists_sources_of_every_fingerprint_with_their_settings(latents):
    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    other = latents.with_settings({"model_id": "other-model", "fps": 2.0, "window_frames": 4})
    other.put_chunk(make_chunk("video-b", 0, 0.0, 1.0))
    other.set_source_info("video-b", name="/videos/b.mp4", complete=True)
    found = {(info.source_id, info.settings["model_id"], info.complete) for info in latents.every_source()}
    assert found == {("video-a", "tiny-test", False), ("video-b", "other-model", True)}
    assert latents.list_sources() == ["video-a"]  # one fingerprint's own listing is unchanged


def test_keys_of_one_source_share_one_cluster_slot(latents):
    latents.put_chunk(make_chunk("video-a", 4, 8.0, 9.0))
    keys = [k.decode() for k in raw(latents).scan_iter(match=f"{latents.db.prefix}src:*")]
    tags = {k[k.index("{") + 1 : k.index("}")] for k in keys}
    assert len(keys) == 6 and tags == {f"{latents.fingerprint}:video-a"}  # chunk, times, ends, span, meta, ver


def test_drop_windows_forgets_their_latents_and_index(latents):
    for index in range(4):
        latents.put_chunk(make_chunk("video-a", index, float(index), index + 1.0))
    assert latents.drop_windows("video-a", [0, 1]) == 2
    assert latents.cached_indices("video-a") == {2, 3}
    assert [c.index for c in latents.chunks_in_range("video-a", 0.0, 10.0)] == [2, 3]
    assert latents.drop_windows("video-a", []) == 0
    assert sorted(raw(latents).hkeys(latents._key("video-a", "ends"))) == [b"2", b"3"]


def test_range_queries_over_many_windows_match_a_direct_computation(latents):
    # 1,300 windows of 8 frames at 12.5 fps (0.64 s, times that are not short decimals): the
    # script's batches of 512 and their seams, and the overlap test at both ends of the range.
    rng = np.random.default_rng(3)
    starts = [i * 0.64 for i in range(1300)]
    vectors = rng.standard_normal((1300, 4)).astype(np.float32)
    latents.put_chunks(
        [MediaChunk("s", i, t, t + 0.64, make_chunk("s", i, 0, 1).latents, vectors[i]) for i, t in enumerate(starts)]
    )
    for start, end in [(0.0, 1e9), (327.0, 655.9), (0.64 * 511, 0.64 * 1025), (1.0, 1.3), (0.64 * 3, 0.64 * 4)]:
        want = [(i, t, t + 0.64) for i, t in enumerate(starts) if t < end and t + 0.64 >= start]
        spans, found = latents.spans_and_embeddings("s", start, end)
        assert spans == want == latents.window_spans("s", start, end)
        assert np.allclose(found, vectors[[i for i, _, _ in want]], atol=1e-2)


def test_windows_cached_before_the_ends_index_are_still_found(latents):
    for index in range(3):
        latents.put_chunk(make_chunk("video-a", index, 2.0 * index, 2.0 * index + 1.5))
    raw(latents).hdel(latents._key("video-a", "ends"), "1")  # as an older Heron wrote it
    assert latents.window_spans("video-a", 0.0, 10.0) == [(0, 0.0, 1.5), (1, 2.0, 3.5), (2, 4.0, 5.5)]
    assert latents.window_spans("video-a", 3.6, 3.9) == []  # window 1's end, read from its chunk


def test_put_chunks_writes_several_sources_in_one_call(latents):
    latents.put_chunks(
        [make_chunk("video-a", 0, 0.0, 1.0), make_chunk("video-b", 0, 0.0, 1.0), make_chunk("video-a", 1, 1.0, 2.0)]
    )
    assert latents.list_sources() == ["video-a", "video-b"]
    assert latents.cached_indices("video-a") == {0, 1} and latents.cached_indices("video-b") == {0}


# --- retrieval embeddings -----------------------------------------------------------------------


def test_window_embeddings_are_stored_with_their_windows_and_leave_with_them(latents):
    rng = np.random.default_rng(0)
    chunks = [make_chunk("s", i, 2.0 * i, 2.0 * i + 2) for i in range(4)]
    vectors = rng.standard_normal((4, 6)).astype(np.float32)
    latents.put_chunks(
        [MediaChunk(c.source_id, c.index, c.t_start, c.t_end, c.latents, v) for c, v in zip(chunks, vectors)]
    )
    found = latents.embeddings("s", [3, 0])
    assert found.dtype == np.float32 and np.allclose(found, vectors[[3, 0]], atol=1e-2)  # stored as fp16
    latents.drop_windows("s", [3])
    assert latents.embeddings("s", [3]) is None and latents.embeddings("s", [0, 1]) is not None
    latents.put_chunk(make_chunk("s", 5, 10.0, 12.0))  # a window without one: the set has none
    assert latents.embeddings("s", [0, 5]) is None and latents.embeddings("s", []) is None
    latents.clear_source("s")
    assert latents.embeddings("s", [0]) is None


def test_spans_and_embeddings_come_in_one_read_and_agree_with_the_separate_reads(latents):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((6, 8)).astype(np.float32)
    latents.put_chunks(
        [MediaChunk("s", i, 2.0 * i, 2.0 * i + 1.5, make_chunk("s", i, 0, 1).latents, vectors[i]) for i in range(6)]
    )
    spans, found = latents.spans_and_embeddings("s", 3.0, 7.0)
    assert spans == latents.window_spans("s", 3.0, 7.0) == [(1, 2.0, 3.5), (2, 4.0, 5.5), (3, 6.0, 7.5)]
    assert np.array_equal(found, latents.embeddings("s", [1, 2, 3]))
    assert np.allclose(found, vectors[1:4], atol=1e-2)
    assert latents.spans_and_embeddings("s", 3.6, 3.9) == ([], None)  # between windows 1 and 2
    latents.put_chunk(make_chunk("s", 6, 12.0, 13.5))  # one without an embedding: none for the range
    spans, found = latents.spans_and_embeddings("s", 0.0, 100.0)
    assert [i for i, _, _ in spans] == list(range(7)) and found is None
    with pytest.raises(TimeRangeError):
        latents.spans_and_embeddings("s", 5.0, 1.0)


def test_a_non_finite_embedding_is_refused(latents):
    bad = make_chunk("s", 0, 0.0, 1.0)
    with pytest.raises(StateStoreError, match="embedding"):
        latents.put_chunk(MediaChunk("s", 0, 0.0, 1.0, bad.latents, np.array([np.nan, 1.0])))


# --- copies of range reads ----------------------------------------------------------------------


def _with_embeddings(source_id: str, spans: list[tuple[int, float, float]], seed: int = 0) -> list[MediaChunk]:
    vectors = np.random.default_rng(seed).standard_normal((len(spans), 6)).astype(np.float32)
    return [
        MediaChunk(source_id, i, a, b, make_chunk(source_id, i, a, b).latents, v)
        for (i, a, b), v in zip(spans, vectors)
    ]


def test_a_repeated_range_read_is_served_from_the_stores_copy_until_the_index_changes(latents):
    latents.put_chunks(_with_embeddings("s", [(i, 2.0 * i, 2.0 * i + 2) for i in range(3)]))
    first = latents.spans_and_embeddings("s", 0.0, 10.0)
    again = latents.spans_and_embeddings("s", 0.0, 10.0)
    assert latents.index_cache.hits == 1
    assert again[0] == first[0] and np.array_equal(again[1], first[1])
    latents.put_chunks(_with_embeddings("s", [(3, 6.0, 8.0)], seed=1))  # a new window in the range
    spans, found = latents.spans_and_embeddings("s", 0.0, 10.0)
    assert [i for i, _, _ in spans] == [0, 1, 2, 3] and found.shape == (4, 6) and latents.index_cache.hits == 1
    latents.drop_windows("s", [0])
    assert [i for i, _, _ in latents.window_spans("s", 0.0, 10.0)] == [1, 2, 3]
    latents.clear_source("s")  # then the same indices again, at other times: never the old copy
    latents.put_chunks(_with_embeddings("s", [(1, 20.0, 22.0)]))
    assert latents.spans_and_embeddings("s", 0.0, 10.0) == ([], None)
    assert latents.window_spans("s", 0.0, 30.0) == [(1, 20.0, 22.0)]


def test_another_clients_write_reaches_this_stores_next_read(latents, db):
    latents.put_chunks([make_chunk("s", 0, 0.0, 2.0)])
    assert latents.window_spans("s", 0.0, 10.0) == [(0, 0.0, 2.0)]
    other = LatentStore(db, latents.settings)  # another process's store, say the ingest actor's
    other.put_chunks([make_chunk("s", 1, 2.0, 4.0)])
    assert latents.window_spans("s", 0.0, 10.0) == [(0, 0.0, 2.0), (1, 2.0, 4.0)]
    assert latents.index_cache.hits == 0


def test_copies_stay_within_their_byte_budget_and_a_pickled_store_starts_without_them(latents):
    latents.put_chunks(_with_embeddings("s", [(i, 2.0 * i, 2.0 * i + 2) for i in range(8)]))
    latents.index_cache.max_bytes = 4 * 2 * (2 * 100 + 2 * 6 * 4)  # room for four reads of two windows
    for k in range(8):
        latents.spans_and_embeddings("s", 2.0 * k + 0.5, 2.0 * k + 1.5)  # one window each
    assert len(latents.index_cache) == 8
    latents.spans_and_embeddings("s", 0.0, 100.0)  # all 8: over a quarter of the budget, not kept
    assert len(latents.index_cache) == 8
    for k in range(4):
        latents.spans_and_embeddings("s", 4.0 * k + 0.5, 4.0 * k + 2.5)  # two windows each
    assert latents.index_cache._bytes <= latents.index_cache.max_bytes
    latents.index_cache.clear()
    assert len(latents.index_cache) == 0 and latents.index_cache._bytes == 0
    restored = pickle.loads(pickle.dumps(latents))
    assert len(restored.index_cache) == 0 and restored.window_spans("s", 0.0, 3.0) == [(0, 0.0, 2.0), (1, 2.0, 4.0)]
