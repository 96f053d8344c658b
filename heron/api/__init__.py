"""The HTTP service: FastAPI routes over one warm Heron (``heron serve``; docs/serve.md)."""

from heron.api.app import create_app

__all__ = ["create_app"]
