"""How a command talks to whoever ran it: text for people, JSON for scripts, one line per error.

Text output rounds numbers for people (``1.9 s``, not ``1.8799999952316284``) and gets plurals
right; ``--json`` always prints JSON on stdout, errors included (``{"error": {"type", "message"}}``).
While Heron starts (Ray, Redis, the model) a status line on stderr says what it is doing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

# Ray's loggers that speak on every start; their news is not the user's (``--debug`` shows them).
_QUIET_LOGGERS = ("ray", "ray._private.authentication.authentication_token_setup", "filelock")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test may swap it, then close it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class Output:
    """One per command run: carries ``--json`` / ``--debug`` to the error handler and the status line."""

    def __init__(self, *, stdout=None, stderr=None):
        self.json = False
        self.debug = False
        self.progress: bool | None = None  # None: on a terminal only
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._status = None
        self._later: list[str] = []

    def configure(self, *, json: bool = False, debug: bool = False, progress: bool | None = None) -> None:
        """Called first by every command with its own flags."""
        self.json, self.debug, self.progress = json or self.json, debug or self.debug, progress
        logging.basicConfig(
            level=logging.DEBUG if self.debug else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
            stream=self.stderr,
            force=True,
        )
        if not self.debug:
            for name in _QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)

    @property
    def interactive(self) -> bool:
        """Show progress bars and the status line: on a terminal, unless told (``--progress``)."""
        if self.json:
            return False
        return self.stderr.isatty() if self.progress is None else self.progress

    # --- results --------------------------------------------------------------------------------

    def print(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def note(self, text: str) -> None:
        """A line for the person, not the result (stderr; silent under --json)."""
        if not self.json:
            self.clear_status()
            print(text, file=self.stderr)

    def later(self, text: str) -> None:
        """A note to show after the result (``flush_later``), once."""
        if text not in self._later:
            self._later.append(text)

    def flush_later(self) -> None:
        for text in self._later:
            self.note(text)
        self._later = []

    def emit_json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, default=str), file=self.stdout)

    def emit_json_line(self, data: Any) -> None:
        """One compact line: for output that streams (``heron watch --json``, ``alerts tail``)."""
        print(json.dumps(data, default=str), file=self.stdout, flush=True)

    def error(self, error: BaseException) -> None:
        """One line naming the problem (or JSON on stdout under --json)."""
        self.clear_status()
        if self.json:
            self.emit_json({"error": {"type": type(error).__name__, "message": str(error)}})
        else:
            print(f"heron: error: {error}", file=self.stderr)

    # --- the status line ------------------------------------------------------------------------

    def status(self, message: str | None) -> None:
        """Say what Heron is doing now (replaces the previous status); None clears it."""
        if not self.interactive:
            return
        if message is None:
            self.clear_status()
            return
        if not self.stderr.isatty():  # forced on without a terminal: one plain line each
            print(f"heron: {message}…", file=self.stderr)
            return
        if self._status is None:
            from rich.console import Console

            self._status = Console(file=self.stderr).status(message)
            self._status.start()
        else:
            self._status.update(message)

    def clear_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """A block during which status lines may show; cleared however it ends."""
        try:
            yield
        finally:
            self.clear_status()
