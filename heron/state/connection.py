"""The one Redis connection every store of Heron's state shares: client, key schema, errors, pickling.

Every key lives under ``{namespace}:v{FORMAT_VERSION}:`` (``heron:v2:`` by default); the schema is
in docs/state.md. Each key names the thing it belongs to inside a hash tag, ``{...}``
(``heron:v2:src:{<fingerprint>:<source>}:chunk:7``), so all keys of one source, session, job or
stream sit in one Redis Cluster slot and the transactions over them run unchanged on a cluster.

A change to any record's encoding bumps ``FORMAT_VERSION`` and with it the prefix, so data in an old
format is simply a cache miss (``clear_old_formats`` removes it).

The client retries a dropped connection a few times with jittered exponential backoff (a Redis
that restarts is picked up again), then fails fast with ``StateUnavailableError``: a question asked
while Redis is down never hangs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from heron.errors import StateStoreError, StateUnavailableError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # bump on any change of key layout or record encoding (see module docstring)

P = ParamSpec("P")
R = TypeVar("R")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def client_from_url(
    url: str, *, connect_timeout_s: float = 2.0, timeout_s: float = 10.0, retries: int = 3
) -> redis.Redis:
    """A ``redis.Redis`` (bytes replies) that retries dropped connections ``retries`` times, backing off."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries)
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            retry=retry,
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=30,
        )
    except ValueError as error:  # a malformed URL (bad scheme, bad port)
        raise StateStoreError(f"invalid Redis URL {redact_url(url)!r}: {error}") from None


class RedisConnection:
    """One Redis database and one key namespace, shared by the stores of each kind of state.

    url: a ``redis://`` URL (a connection pickles as its URL, so stores travel to Ray actors).
    namespace: first key segment; tests use their own so they can never touch real data.
    """

    def __init__(self, url: str, *, namespace: str = "heron"):
        self.url = url
        self.where = redact_url(url)
        self.namespace = namespace
        self.prefix = f"{namespace}:v{FORMAT_VERSION}:"
        self.client = client_from_url(url)
        self._scripts: dict[str, Any] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        # A live socket cannot travel to another process; the URL can.
        return (functools.partial(RedisConnection, self.url, namespace=self.namespace), ())

    def __repr__(self) -> str:
        return f"RedisConnection({self.where!r}, namespace={self.namespace!r})"

    def key(self, kind: str, tag: str, *parts: str | int) -> str:
        """``{prefix}{kind}:{tag}[:part...]``: every key of one ``tag`` lands in one cluster slot."""
        return ":".join([f"{self.prefix}{kind}:{{{tag}}}", *(str(p) for p in parts)])

    def index_key(self, kind: str) -> str:
        """A namespace-wide index (a set or sorted set of ids): its own slot on a cluster."""
        return f"{self.prefix}{kind}"

    def script(self, name: str, source: str):
        """A Lua script registered once per connection (run atomically by the server)."""
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(source)
        return self._scripts[name]

    def ping(self) -> None:
        """Raise ``StateUnavailableError`` unless the server answers."""
        with translated(self, "ping"):
            self.client.ping()

    def clear_all(self) -> int:
        """Delete every key of this namespace, in every format version; returns keys deleted."""
        with translated(self, "clear_all"):
            return self._unlink_matching(f"{glob_escape(self.namespace)}:*", lambda key: True)

    def clear_old_formats(self) -> int:
        """Delete keys of this namespace written in other format versions; returns keys deleted."""
        current = self.prefix.encode()
        with translated(self, "clear_old_formats"):
            return self._unlink_matching(f"{glob_escape(self.namespace)}:v*", lambda key: not key.startswith(current))

    def _unlink_matching(self, pattern: str, wanted: Callable[[bytes], bool]) -> int:
        # SCAN, not KEYS: KEYS blocks the server for the whole keyspace walk.
        deleted, batch = 0, []
        for key in self.client.scan_iter(match=pattern, count=1000):
            if wanted(key):
                batch.append(key)
            if len(batch) >= 1000:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted


class translated:
    """``with translated(db, "op"):`` turns redis-py errors into Heron's, naming the server and operation."""

    def __init__(self, db: RedisConnection, operation: str):
        self.db, self.operation = db, operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            raise StateUnavailableError(
                f"Redis at {self.db.where} is not answering ({self.operation}: {error}); retry once it is back"
            ) from error
        if isinstance(error, redis.RedisError):
            raise StateStoreError(f"Redis at {self.db.where} failed in {self.operation}: {error}") from error
        return False


def redis_errors_translated(method: Callable[P, R]) -> Callable[P, R]:
    """Method decorator for stores (which hold their connection as ``self.db``): see ``translated``."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated(args[0].db, method.__name__):
            return method(*args, **kwargs)

    return wrapper


def glob_escape(text: str) -> str:
    """``text`` with SCAN MATCH's glob characters escaped."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def decode_fields(record: dict[bytes, bytes]) -> dict[str, str]:
    """A hash read with bytes replies, as text."""
    return {name.decode(): value.decode() for name, value in record.items()}
