"""A loopback TCP proxy in front of a real Redis that can lose one reply: the command reaches the
server and is applied, and the connection drops before its reply reaches the client, as when a
server or a network path dies between the two. redis-py's retry then sends the command again."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class ReplyLosingProxy:
    """Forwards 127.0.0.1:``port`` to the Redis of ``url``; ``lose_reply_to(b"EVALSHA")`` drops the
    connection carrying the next command that holds those bytes once the server has answered it."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{self.port}"))
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self.lost = 0  # replies dropped so far
        self.connections = 0  # client connections accepted so far
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_reply_to(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self._upstream, timeout=5.0)
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
            doomed = threading.Event()  # set once this connection carries the command to lose
            threading.Thread(target=self._requests, args=(client, upstream, doomed), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, doomed), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        doomed.set()  # before the server can answer it
                upstream.sendall(data)
        except OSError:
            pass
        _close(client, upstream)

    def _replies(self, upstream: socket.socket, client: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if doomed.is_set():  # the reply to the doomed command: lose it and the connection
                    with self._lock:
                        self.lost += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
