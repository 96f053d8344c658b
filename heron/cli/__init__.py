"""The ``heron`` command line (Typer): ``heron --help``, ``heron ask``, ``heron cache``, ..."""

from heron.cli.app import app, main

__all__ = ["app", "main"]
