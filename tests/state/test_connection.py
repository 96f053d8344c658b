"""RedisConnection: namespaces, pickling, retries bounded in time, errors naming the server, never its password."""

from __future__ import annotations

import pickle
import time

import pytest
import redis
from redis.backoff import ConstantBackoff

from heron.errors import StateStoreError, StateUnavailableError
from heron.state import DialogueStore, LatentStore, RedisConnection, redact_url
from heron.state.connection import RetryWithin, client_from_url, translate_error

pytestmark = pytest.mark.integration


def test_clear_all_deletes_only_this_namespace(db, latents, dialogue, alerts, redis_url):
    from .test_latents import make_chunk

    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    dialogue.append_turn("s", "user", "hi")
    alerts.push_alert("cam", {"x": 1})
    foreign = redis.Redis.from_url(redis_url)
    foreign.set("not-heron:key", "keep")
    try:
        assert db.clear_all() >= 5
        assert latents.list_sources() == [] and dialogue.get_dialogue("s") == []
        assert foreign.get("not-heron:key") == b"keep"
    finally:
        foreign.delete("not-heron:key")


def test_stores_pickle_as_their_url(latents):
    from .test_latents import make_chunk

    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    copy = pickle.loads(pickle.dumps(latents))
    assert copy.fingerprint == latents.fingerprint and copy.db.prefix == latents.db.prefix
    assert copy.db.client is not latents.db.client
    assert copy.get_chunk("video-a", 0) is not None


def test_unreachable_server_fails_fast_naming_the_url_not_the_password():
    dead = RedisConnection("redis://:secret@127.0.0.1:1/0")
    with pytest.raises(StateUnavailableError, match=r"127\.0\.0\.1:1") as caught:
        LatentStore(dead, {"m": 1}).get_chunk("video-a", 0)
    assert "secret" not in str(caught.value)
    with pytest.raises(StateUnavailableError):
        DialogueStore(dead).get_dialogue("s")
    assert redact_url("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"


def test_a_malformed_url_is_a_typed_error():
    with pytest.raises(StateStoreError, match="invalid Redis URL"):
        RedisConnection("postgres://nowhere")


# --- retries and error translation --------------------------------------------------------------


def test_a_call_to_a_dead_server_gives_up_after_its_retry_window():
    client = client_from_url("redis://127.0.0.1:1/0", retry_window_s=0.5)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    # it retried (pauses of 0.05-0.1 s then 0.1-0.2 s fit any 0.5-s window: >= 0.15 s) and gave up
    assert 0.12 < time.monotonic() - started < 2.0


def test_nested_retries_share_the_outer_deadline():
    # redis-py retries a reconnect inside a command's retry; counts would multiply, a deadline does not
    retry = RetryWithin(0.4, ConstantBackoff(0.05))
    attempts = []

    def fail():
        attempts.append(time.monotonic())
        raise redis.ConnectionError("down")

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(lambda: retry.call_with_retry(fail, lambda error: None), lambda error: None)
    assert time.monotonic() - started < 0.8 and len(attempts) <= 12
    assert retry.call_with_retry(lambda: "ok", lambda error: None) == "ok"  # a fresh deadline for the next call


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (
            redis.ResponseError(
                "Command # 1 (HSET k latents \x00\n\x01...) of pipeline caused error: "
                "MISCONF Errors writing to the AOF file: No space left on device"
            ),
            StateUnavailableError,
            "cannot write its data to disk (Errors writing to the AOF file: No space left on device)",
        ),
        (
            redis.ResponseError(
                "MISCONF Valkey is configured to save RDB snapshots, but it's currently unable to persist to "
                "disk. Commands that may modify the data set are disabled. Please check the logs."
            ),
            StateUnavailableError,
            "cannot write its data to disk (it cannot save its RDB snapshot)",
        ),
        (
            redis.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
            StateUnavailableError,
            "out of memory",
        ),
        (redis.BusyLoadingError("Valkey is loading the dataset in memory"), StateUnavailableError, "still loading"),
        (redis.ConnectionError("Error 111 connecting"), StateUnavailableError, "not answering (put_chunks"),
        (redis.AuthenticationError("invalid username-password pair"), StateStoreError, "refused Heron's credentials"),
        (redis.ResponseError("WRONGTYPE Operation against a key"), StateStoreError, "failed in put_chunks: WRONGTYPE"),
    ],
)
def test_redis_errors_become_one_line_typed_errors(error, kind, says):
    translated = translate_error(error, "redis://:***@host:6379/0", "put_chunks")
    assert type(translated) is kind and says in str(translated)
    assert "\n" not in str(translated) and str(translated).startswith("Redis at redis://:***@host:6379/0 ")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:hunter2@[::1]:6379/0", "redis://user:***@[::1]:6379/0"),
        ("rediss://host:6380/0?password=hunter2&db=1", "rediss://host:6380/0?password=***&db=1"),
        ("unix:///run/redis.sock?db=0&password=hunter2", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://:hunter2@host:notaport/0", "redis://:***@host:notaport/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_redact_url_hides_every_form_of_password(url, shown):
    assert redact_url(url) == shown


def test_a_malformed_url_with_a_password_does_not_show_it():
    with pytest.raises(StateStoreError, match="invalid Redis URL") as caught:
        RedisConnection("redis://:hunter2@host:notaport/0")
    assert "hunter2" not in str(caught.value)
