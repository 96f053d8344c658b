"""The HTTP service's typed configuration (the ``serve:`` section of a preset; flags override it).

Security defaults are closed: loopback only without an API key, local paths only under the roots
named here, URLs only to public addresses unless allow-listed. See docs/serve.md.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from heron.errors import ConfigError


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # any other address needs an API key ($HERON_API_KEY)
    port: int = 8000
    api_key_env: str = "HERON_API_KEY"  # the environment variable holding the bearer token
    # Local paths a request may name (a video_url of a path, a source path): only under these
    # directories, after resolving symlinks and "..". Empty: no local paths at all.
    allow_paths: list[str] = field(default_factory=list)
    # URL schemes a request may name; addresses that resolve to private, loopback, link-local or
    # reserved networks are refused unless their host or network is listed in allow_hosts.
    url_schemes: list[str] = field(default_factory=lambda: ["http", "https", "rtsp"])
    allow_hosts: list[str] = field(default_factory=list)  # hostnames, IPs or CIDRs, e.g. 10.0.0.0/8
    max_upload_mb: float = 512.0  # uploads and fetched URLs beyond this are refused (413)
    max_video_s: float = 4 * 3600.0  # videos longer than this are refused (413)
    max_resolution: int = 4096  # videos wider or taller than this (pixels) are refused (413)
    max_question_chars: int = 4000  # longer questions / prompts are refused (413)
    max_tokens: int = 512  # cap on max_tokens a request may ask for
    max_concurrent: int = 64  # requests served at once; beyond it 429 with Retry-After
    retry_after_s: int = 1  # the Retry-After a 429 carries
    fetch_timeout_s: float = 30.0  # connect / read timeout of each URL fetch
    max_redirects: int = 5
    upload_dir: str | None = None  # where uploads and fetched videos are kept; None: $HERON_HOME/uploads
    shutdown_grace_s: float = 30.0  # in-flight requests get this long to finish on shutdown

    def __post_init__(self) -> None:
        if not (isinstance(self.port, int) and 0 <= self.port <= 65535):
            raise ConfigError(f"serve.port must be 0..65535, got {self.port!r}")
        for name in ("max_upload_mb", "max_video_s", "fetch_timeout_s", "shutdown_grace_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"serve.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_resolution", "max_question_chars", "max_tokens", "max_concurrent", "max_redirects"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ConfigError(f"serve.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        unknown = sorted(set(self.url_schemes) - {"http", "https", "rtsp", "rtsps"})
        if unknown:
            raise ConfigError(f"serve.url_schemes may hold http, https, rtsp, rtsps; got {', '.join(unknown)}")

    @property
    def loopback_only(self) -> bool:
        """True when the service can only be reached from this machine."""
        if self.host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def load_serve_config(name_or_path) -> ServeConfig:
    """The ``serve:`` section of a preset or YAML file; defaults when there is none (or for a model directory)."""
    from heron.config.model_source import find_path
    from heron.config.schema import from_dict, preset_path, read_yaml

    found = find_path(name_or_path)
    if found is not None and found.is_dir():
        return ServeConfig()
    path = preset_path(name_or_path)
    return from_dict(ServeConfig, read_yaml(path).get("serve") or {}, f"{path.name}:serve")
