"""A real Redis server the test itself can SIGKILL and start again on the same port and directory,
or starve of disk space (RLIMIT_FSIZE: no root mounts needed)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from heron.state.server import find_server_binary


class RedisProcess:
    """``redis-server`` (or valkey) on 127.0.0.1:``port`` keeping its data in ``directory``.

    appendonly: with ``everysec`` fsync, a SIGKILL loses at most about the last second of writes.
    file_size_limit: bytes no file of the server may grow past (RLIMIT_FSIZE, SIGXFSZ ignored), so
        its AOF writes fail as on a full disk ("No space left on device"); ``set_file_size_limit``
        changes it on the running server ("space returns").
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        port: int | None = None,
        appendonly: bool = True,
        file_size_limit: int | None = None,
    ):
        self.directory = Path(directory or tempfile.mkdtemp(prefix="heron-fault-redis-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self.appendonly = appendonly
        self.file_size_limit = file_size_limit
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 15.0) -> RedisProcess:
        conf = self.directory / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f'dir "{self.directory}"',
                    "daemonize no",
                    f"appendonly {'yes' if self.appendonly else 'no'}",
                    "appendfsync everysec",
                    'save ""',
                    f'logfile "{self.directory / "redis.log"}"',
                ]
            )
            + "\n"
        )
        self._process = subprocess.Popen(
            [str(find_server_binary()), str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=None if self.file_size_limit is None else self._limit_file_size,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis exited with {self._process.returncode}; see {self.directory / 'redis.log'}")
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.02)
        raise RuntimeError(f"redis did not answer on port {self.port} within {timeout_s} s")

    def _limit_file_size(self) -> None:  # in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), not kills
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit, hard))

    def set_file_size_limit(self, limit: int | None) -> None:
        """Change the running server's limit (None: none). Only for a server started with a limit:
        that start made it ignore SIGXFSZ. The hard limit stays as it was, so no privilege is needed."""
        self.file_size_limit = limit
        hard = resource.prlimit(self._process.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(self._process.pid, resource.RLIMIT_FSIZE, (hard if limit is None else limit, hard))

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; what the AOF holds is what survives."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def restart(self) -> RedisProcess:
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
