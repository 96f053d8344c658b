"""Fetching a video from a URL without letting the URL reach what it must not (SSRF).

Each hop resolves the host, checks every address with the ``SourcePolicy``, and connects to the
checked address itself (the Host header and TLS name stay the URL's), so a DNS answer that
changes between check and connect cannot smuggle in a private address. Redirects are followed by
hand, each one checked the same way. The body streams to a file under a size limit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from heron.api.errors import NotAllowed, TooLarge
from heron.api.security import SourcePolicy
from heron.errors import SourceUnreachableError

_CHUNK = 1 << 16


def fetch(url: str, policy: SourcePolicy, directory: Path) -> Path:
    """Download ``url`` into ``directory`` (a file named by the content's hash); returns its path."""
    cfg = policy.cfg
    limit = int(cfg.max_upload_mb * 1e6)
    timeout = httpx.Timeout(cfg.fetch_timeout_s)
    for _ in range(cfg.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise NotAllowed(f"only http(s) URLs can be fetched, not {parts.scheme}:// ({url})")
        host, port, addresses = policy.check_url(url)
        pinned = _with_address(parts, addresses[0], port)
        headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": "heron"}
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=False) as client,
                client.stream("GET", pinned, headers=headers, extensions={"sni_hostname": host}) as response,
            ):
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise SourceUnreachableError(f"{url} redirects without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code >= 400:
                    raise SourceUnreachableError(f"{url} answered HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > limit:
                    raise TooLarge(f"{url} is {declared / 1e6:.0f} MB, beyond the {cfg.max_upload_mb:g} MB limit")
                return _save(response.iter_bytes(_CHUNK), directory, limit, url)
        except httpx.HTTPError as error:
            raise SourceUnreachableError(f"cannot fetch {url}: {type(error).__name__}: {error}") from None
    raise NotAllowed(f"{url} redirects more than {cfg.max_redirects} times")


def save_stream(chunks, directory: Path, limit: int, name: str) -> Path:
    """Write ``chunks`` (bytes) to a content-named file in ``directory``, refusing beyond ``limit`` bytes."""
    return _save(chunks, directory, limit, name)


def _save(chunks, directory: Path, limit: int, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.blake2b(digest_size=16), 0
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"{name} is larger than the {limit / 1e6:g} MB limit")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise SourceUnreachableError(f"{name} is empty")
        target = directory / f"{digest.hexdigest()}{_suffix(name)}"
        os.replace(tmp, target)
        return target
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _suffix(name: str) -> str:
    suffix = Path(urlsplit(name).path).suffix.lower()
    return suffix if suffix.isascii() and 1 < len(suffix) <= 6 and suffix[1:].isalnum() else ".video"


def _with_address(parts, address, port: int) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))
