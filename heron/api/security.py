"""Who may call, and what a request may name: the bearer token, local paths, URL hosts (no SSRF).

- The token (``$HERON_API_KEY``) is compared in constant time; it is required whenever the
  service listens on anything but loopback.
- A local path must resolve (symlinks and ``..`` followed) to somewhere under an allowed root.
- A URL's host must resolve only to public addresses, unless its name, address or network is
  allow-listed; the fetcher (``fetch.py``) connects to the very address checked here, and checks
  again after every redirect, so neither DNS rebinding nor a redirect reaches a private address.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlsplit

from heron.api.errors import NotAllowed, Unauthorized
from heron.config import ServeConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_token(header: str | None, expected: str | None) -> None:
    """Raise Unauthorized unless ``header`` is ``Bearer <expected>`` (no key configured: anyone)."""
    if not expected:
        return
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized(
            "a valid API key is needed: send 'Authorization: Bearer <HERON_API_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


class SourcePolicy:
    """What the ``serve:`` config allows a request to name."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.roots = [Path(root).expanduser().resolve() for root in cfg.allow_paths]
        self._hosts = {h.lower() for h in cfg.allow_hosts if not _is_network(h)}
        self._networks = [ipaddress.ip_network(h, strict=False) for h in cfg.allow_hosts if _is_network(h)]

    # --- local paths ------------------------------------------------------------------------------

    def local_path(self, text: str) -> Path:
        """The resolved path, if it lies under an allowed root; NotAllowed otherwise."""
        if not self.roots:
            raise NotAllowed(
                "this service accepts no local paths (serve.allow_paths is empty); upload the video or give a URL"
            )
        path = Path(text).expanduser()
        resolved = path.resolve()  # follows symlinks and ".." before the check, so neither escapes
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            raise NotAllowed(f"{text} is outside the directories this service may read (serve.allow_paths)")
        return resolved

    # --- URLs -------------------------------------------------------------------------------------

    def check_url(self, url: str) -> tuple[str, int, list[IPAddress]]:
        """(host, port, addresses) of a URL whose scheme is allowed and whose every address is."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in self.cfg.url_schemes:
            raise NotAllowed(
                f"{scheme or 'no'}:// URLs are not accepted (serve.url_schemes: {', '.join(self.cfg.url_schemes)})"
            )
        if not parts.hostname:
            raise NotAllowed(f"{url} names no host")
        port = parts.port or {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}[scheme]
        return parts.hostname, port, self.addresses(parts.hostname, port)

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, each of them allowed; NotAllowed naming the first that is not."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NotAllowed(f"cannot resolve {host}: {error.strerror or error}") from None
        found = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        for address in found:
            if not self.allowed(host, address):
                raise NotAllowed(
                    f"{host} resolves to {address}, a private, loopback or reserved address; "
                    "add it to serve.allow_hosts to allow it"
                )
        return found

    def allowed(self, host: str, address: IPAddress) -> bool:
        if address.is_global and not address.is_multicast:
            return True
        return host.lower() in self._hosts or any(address in network for network in self._networks)


def _is_network(text: str) -> bool:
    """An address or a CIDR network (``10.0.0.5``, ``10.0.0.0/8``), as opposed to a hostname."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
