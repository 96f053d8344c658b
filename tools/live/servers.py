"""Loopback live-stream servers for tests: RTSP, HTTP (MPEG-TS / FLV / MJPEG), HLS, stalling sockets.

Pure stdlib + subprocess, importable from the venv. The servers run as child processes:

* ``RtspServer``       ``/usr/bin/python3 tools/live/rtsp_server.py`` (GstRtspServer, H.264, TCP+UDP).
* ``HttpStreamServer`` ``ffmpeg -re -i FILE ... -listen 1 http://127.0.0.1:PORT/stream.EXT``;
  ``HttpTsServer`` / ``HttpFlvServer`` / ``HttpMjpegServer`` pick the format. ffmpeg's
  ``-listen 1`` serves ONE client, then exits; with ``respawn=True`` (default) a watcher starts
  it again, so a client can reconnect (the stream then starts again at the file's beginning).
* ``HlsServer``        ffmpeg writes a live HLS playlist in real time into a temp folder,
  served by a ``http.server`` thread.
* ``StallServer``      a TCP socket that accepts and never answers (``mode="silent"``), or sends
  an HTTP 200 header and then stalls (``mode="http-200"``), or closes at once (``mode="close"``).
* ``make_test_video``  writes a small H.264 MP4 (coloured square appearing at a known time,
  frame index stamped in the top rows: read it back with ``read_frame_index``).

Every wait is bounded; every child is killed on ``stop()``, on ``__exit__`` and at interpreter
exit. Servers bind 127.0.0.1 only. ``ToolsMissing`` (a RuntimeError) means the system
packages are absent: tests should skip on it (install them with ``tools/setup_system.sh``).
"""

from __future__ import annotations

import atexit
import functools
import http.server
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LIVE_DIR = Path(__file__).resolve().parent
RTSP_SCRIPT = LIVE_DIR / "rtsp_server.py"
SYSTEM_PYTHON = os.environ.get("HERON_SYSTEM_PYTHON", "/usr/bin/python3")
LOOPBACK = "127.0.0.1"

__all__ = [
    "ToolsMissing",
    "ServerError",
    "check_rtsp_tools",
    "check_ffmpeg",
    "free_port",
    "RtspServer",
    "HttpStreamServer",
    "HttpTsServer",
    "HttpFlvServer",
    "HttpMjpegServer",
    "HlsServer",
    "StallServer",
    "make_test_video",
    "read_frame_index",
]


class ToolsMissing(RuntimeError):
    """The system tools a server needs (ffmpeg, GStreamer RTSP server) are not installed."""


class ServerError(RuntimeError):
    """A server process failed to start (its stderr tail is in the message)."""


# ---------------------------------------------------------------- tool checks


@functools.cache
def _rtsp_tools_problem() -> str | None:
    code = (
        "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "m=[n for n in ('appsrc','videoconvert','x264enc','rtph264pay','decodebin','appsink')"
        " if Gst.ElementFactory.find(n) is None];"
        "print('missing GStreamer elements: '+', '.join(m) if m else 'ok')"
    )
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    try:
        out = subprocess.run([SYSTEM_PYTHON, "-c", code], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"{SYSTEM_PYTHON} GStreamer check timed out"
    if out.returncode != 0:
        return "GStreamer python bindings unusable: " + (out.stderr.strip().splitlines() or ["?"])[-1]
    return None if out.stdout.strip() == "ok" else out.stdout.strip()


def check_rtsp_tools() -> None:
    """Raise ToolsMissing unless the system python3 can run rtsp_server.py."""
    problem = _rtsp_tools_problem()
    if problem:
        raise ToolsMissing(f"RTSP test server unavailable ({problem}); run tools/setup_system.sh")


def check_ffmpeg() -> str:
    """Path of the ffmpeg binary; ToolsMissing when it is not on PATH."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise ToolsMissing("ffmpeg not on PATH; run tools/setup_system.sh")
    return path


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_listening(port: int, states: tuple[str, ...] = ("0A",)) -> bool:
    """True if a local TCP socket on `port` is in one of `states` (default LISTEN).

    Reads /proc/net/tcp{,6}; never connects, so it does not use up ffmpeg's single
    ``-listen 1`` client. States: 0A LISTEN, 01 ESTABLISHED, 08 CLOSE_WAIT."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(want) and fields[3] in states:
                return True
    return False


def wait_until(pred: Any, timeout: float, what: str, proc: _Child | None = None) -> None:
    """Poll `pred()` every 20 ms until true; ServerError after `timeout` s or if `proc` died."""
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and not proc.alive():
            raise ServerError(f"{what}: process exited with {proc.returncode()}\n{proc.stderr_tail()}")
        if time.monotonic() > deadline:
            raise ServerError(f"{what}: not ready after {timeout:.1f}s\n" + (proc.stderr_tail() if proc else ""))
        time.sleep(0.02)


_LIVE_CHILDREN: set[_Child] = set()
_LIVE_SERVERS: weakref.WeakSet[_Server] = weakref.WeakSet()
_EXITING = threading.Event()
# Children are forked by one long-lived thread under `setpriv --pdeathsig KILL`: Linux sends the
# signal when the forking *thread* dies, so they die with this process, even on SIGKILL.
_SETPRIV = shutil.which("setpriv")
_SPAWN_QUEUE: queue.Queue[tuple[list[str], queue.Queue[Any]]] = queue.Queue()


def _spawner() -> None:
    while True:
        cmd, reply = _SPAWN_QUEUE.get()
        try:
            reply.put(
                subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
                )
            )
        except Exception as exc:  # handed back to the caller
            reply.put(exc)


threading.Thread(target=_spawner, name="live-servers-spawner", daemon=True).start()


def _popen(cmd: list[str]) -> subprocess.Popen[str]:
    if _EXITING.is_set():
        raise ServerError("interpreter is exiting; not starting " + cmd[0])
    reply: queue.Queue[Any] = queue.Queue()
    _SPAWN_QUEUE.put(([_SETPRIV, "--pdeathsig", "KILL", "--", *cmd] if _SETPRIV else cmd, reply))
    result = reply.get(timeout=30)
    if isinstance(result, Exception):
        raise result
    return result


@atexit.register
def _stop_everything() -> None:
    _EXITING.set()
    for server in list(_LIVE_SERVERS):
        try:
            server.stop()
        except Exception:  # best effort at exit
            pass
    for child in list(_LIVE_CHILDREN):
        child.kill()


class _Child:
    """A child process with its stdout lines and stderr tail collected by threads."""

    def __init__(self, cmd: Sequence[str]) -> None:
        self.cmd = list(cmd)
        self.lines: deque[str] = deque(maxlen=200)
        self.err: deque[str] = deque(maxlen=40)
        self.proc = _popen(self.cmd)
        _LIVE_CHILDREN.add(self)
        for stream, sink in ((self.proc.stdout, self.lines), (self.proc.stderr, self.err)):
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _drain(stream: Any, sink: deque[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll()

    def stderr_tail(self) -> str:
        return "\n".join(self.err)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
        """Send `sig`, SIGKILL after `grace` s; always reaped."""
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused child must see `sig`
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the child (no-op once it exited)."""
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _LIVE_CHILDREN.discard(self)


class _Server:
    """Context-manager plumbing shared by the servers, plus pause/resume."""

    child: _Child | None = None

    def __new__(cls, *_args: Any, **_kw: Any) -> Any:
        self = super().__new__(cls)
        _LIVE_SERVERS.add(self)  # stopped at interpreter exit
        return self

    def __enter__(self) -> Any:
        return self

    def pause(self) -> None:
        """SIGSTOP the server process: connections stay open but nothing is sent
        (a hung server / dead network). ``resume()`` undoes it."""
        if self.child is not None:
            self.child.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.child is not None:
            self.child.send_signal(signal.SIGCONT)

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# ---------------------------------------------------------------- RTSP


class RtspServer(_Server):
    """GstRtspServer on rtsp://127.0.0.1:PORT/MOUNT (H.264, shared media, TCP and UDP).

    Scene (no `file`): ``scene="appear"`` shows black, then a `color` square from
    `appear_at` s of media time (repeating every `cycle` s if given); ``scene="testsrc"``
    is videotestsrc. With `file`: that file at real-time speed, looped if `loop`.
    The media (and scene time) starts with the first client and ends with the last one.
    Starts in the constructor; ``restart()`` kills it and starts again on the same port.
    """

    def __init__(
        self,
        file: os.PathLike[str] | str | None = None,
        *,
        loop: bool = True,
        scene: str = "appear",
        appear_at: float = 6.0,
        color: str = "red",
        cycle: float = 0.0,
        fps: int = 10,
        width: int = 320,
        height: int = 240,
        port: int | None = None,
        mount: str = "/live",
        start_timeout: float = 15.0,
    ) -> None:
        check_rtsp_tools()
        args = ["--mount", mount]
        if file is not None:
            if not Path(file).is_file():
                raise FileNotFoundError(f"RtspServer: no such video file: {file}")
            args += ["--file", str(Path(file).resolve())] + (["--loop"] if loop else [])
        else:
            args += [
                "--scene",
                scene,
                "--appear-at",
                str(appear_at),
                "--color",
                color,
                "--cycle",
                str(cycle),
                "--fps",
                str(fps),
                "--width",
                str(width),
                "--height",
                str(height),
            ]
        self.args, self.mount, self.start_timeout = args, mount, start_timeout
        self.port = port or 0
        self.child: _Child | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"rtsp://{LOOPBACK}:{self.port}{self.mount}"

    def start(self) -> None:
        """Start the server process and wait (bounded) for its READY line."""
        cmd = [SYSTEM_PYTHON, "-u", str(RTSP_SCRIPT), "--port", str(self.port), "--parent-pid", str(os.getpid())]
        child = _Child([*cmd, *self.args])
        self.child = child
        try:
            wait_until(
                lambda: any(x.startswith("READY ") for x in child.lines), self.start_timeout, "rtsp_server.py", child
            )
        except ServerError:
            child.kill()
            raise
        ready = next(x for x in child.lines if x.startswith("READY "))
        self.port = int(ready.split()[1].rsplit(":", 1)[1].split("/", 1)[0])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.child is not None:
            self.child.stop(sig)

    def restart(self, down_s: float = 0.0, sig: int = signal.SIGKILL) -> None:
        """Kill the server (SIGKILL by default: a crash mid-stream), stay down `down_s` s,
        then start it again on the same port."""
        self.stop(sig)
        time.sleep(down_s)
        self.start()


# ---------------------------------------------------------------- ffmpeg HTTP push

_HTTP_FORMATS: dict[str, tuple[str, list[str]]] = {
    # format: (url extension, codec args)
    "mpegts": ("ts", ["-c", "copy"]),
    "flv": ("flv", ["-c", "copy"]),
    "mpjpeg": ("mjpeg", ["-c:v", "mjpeg", "-q:v", "5", "-an"]),
}


class HttpStreamServer(_Server):
    """ffmpeg serving FILE at real time on http://127.0.0.1:PORT/stream.EXT (one client).

    ffmpeg ``-listen 1`` accepts a single client and exits when it leaves; with
    ``respawn=True`` a watcher thread restarts it (the stream restarts at the file's
    start). ``loop=True`` loops the file (``-stream_loop -1``). `fmt`: mpegts, flv, mpjpeg.
    """

    def __init__(
        self,
        file: os.PathLike[str] | str,
        *,
        fmt: str = "mpegts",
        port: int | None = None,
        loop: bool = True,
        respawn: bool = True,
        start_timeout: float = 10.0,
        max_s: float = 1800.0,
    ) -> None:
        self.ffmpeg = check_ffmpeg()
        self.max_s = max_s  # ffmpeg -t: a leaked ffmpeg (parent SIGKILLed) stops streaming by itself
        if fmt not in _HTTP_FORMATS:
            raise ValueError(f"fmt must be one of {sorted(_HTTP_FORMATS)}")
        self.file, self.fmt, self.loop, self.respawn = Path(file).resolve(), fmt, loop, respawn
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.child: _Child | None = None
        self.starts = 0  # how many ffmpeg processes were started
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/stream.{_HTTP_FORMATS[self.fmt][0]}"

    def _cmd(self) -> list[str]:
        ext_codec = _HTTP_FORMATS[self.fmt][1]
        return [
            self.ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            *(["-stream_loop", "-1"] if self.loop else []),
            "-i",
            str(self.file),
            *ext_codec,
            "-t",
            str(self.max_s),
            "-f",
            self.fmt,
            "-listen",
            "1",
            self.url,
        ]

    def start(self) -> None:
        """Start ffmpeg (and the respawn watcher); return once it LISTENs (bounded)."""
        self._stopping.clear()
        self._spawn(from_watcher=False)
        if self.respawn and (self._watcher is None or not self._watcher.is_alive()):
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def _spawn(self, from_watcher: bool) -> None:
        with self._lock:
            if from_watcher and self._stopping.is_set():
                return
            child = _Child(self._cmd())
            self.child = child
            self.starts += 1
        try:
            # LISTEN, or already serving a client that connected between two polls
            wait_until(
                lambda: port_listening(self.port, ("0A", "01", "08")), self.start_timeout, "ffmpeg -listen", child
            )
        except ServerError:
            child.kill()
            raise

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until ffmpeg LISTENs again. While it serves a client, and for
        ~0.1-0.5 s after that client left (until the watcher respawned it), connections
        are REFUSED; call this before reconnecting."""
        wait_until(
            lambda: self.child is not None and self.child.alive() and port_listening(self.port),
            timeout,
            "ffmpeg -listen (respawn)",
        )

    def _watch(self) -> None:
        while not self._stopping.wait(0.05):
            child = self.child
            if child is not None and not child.alive():
                try:
                    self._spawn(from_watcher=True)
                except ServerError:
                    self._stopping.wait(0.5)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self._stopping.set()
        with self._lock:
            if self.child is not None:
                self.child.stop(sig)
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(self.start_timeout + 6)

    def restart(self, down_s: float = 0.0, sig: int = signal.SIGKILL) -> None:
        """Kill ffmpeg mid-stream, stay down `down_s` s, start again on the same port."""
        self.stop(sig)
        time.sleep(down_s)
        self.start()


class HttpTsServer(HttpStreamServer):
    """HttpStreamServer with MPEG-TS (``-c copy -f mpegts``): http://127.0.0.1:PORT/stream.ts."""

    def __init__(self, file: os.PathLike[str] | str, **kw: Any) -> None:
        super().__init__(file, fmt="mpegts", **kw)


class HttpFlvServer(HttpStreamServer):
    """HttpStreamServer with FLV (``-c copy -f flv``): http://127.0.0.1:PORT/stream.flv."""

    def __init__(self, file: os.PathLike[str] | str, **kw: Any) -> None:
        super().__init__(file, fmt="flv", **kw)


class HttpMjpegServer(HttpStreamServer):
    """HttpStreamServer with multipart JPEG (``-f mpjpeg``): http://127.0.0.1:PORT/stream.mjpeg.
    Open it with ``av.open(url, format="mpjpeg")``."""

    def __init__(self, file: os.PathLike[str] | str, **kw: Any) -> None:
        super().__init__(file, fmt="mpjpeg", **kw)


# ---------------------------------------------------------------- HLS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


class HlsServer(_Server):
    """Live HLS of FILE: http://127.0.0.1:PORT/live.m3u8.

    ffmpeg (``-re``, ``-c copy -f hls -hls_time 1``) appends ~1 s segments in real time to
    a temp folder (rolling window of `list_size`, old segments deleted); a ThreadingHTTPServer
    thread serves it. Ready once the playlist lists `min_segments` segments. With
    ``loop=False`` the playlist ends (#EXT-X-ENDLIST) when the file does.
    ``restart()`` kills ffmpeg and starts a new playlist (media sequence restarts at 0).
    """

    def __init__(
        self,
        file: os.PathLike[str] | str,
        *,
        port: int | None = None,
        loop: bool = True,
        hls_time: float = 1.0,
        list_size: int = 6,
        min_segments: int = 2,
        start_timeout: float = 15.0,
        max_s: float = 1800.0,
    ) -> None:
        self.ffmpeg = check_ffmpeg()
        self.max_s = max_s  # ffmpeg -t: a leaked ffmpeg (parent SIGKILLed) stops by itself
        self.file, self.loop = Path(file).resolve(), loop
        self.hls_time, self.list_size, self.min_segments = hls_time, list_size, min_segments
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="heron-hls-"))
        self.playlist = self.dir / "live.m3u8"
        handler = functools.partial(_QuietHandler, directory=str(self.dir))
        self.httpd = http.server.ThreadingHTTPServer((LOOPBACK, port or 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.child: _Child | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/live.m3u8"

    def segments(self) -> list[str]:
        """Segment names the playlist lists now."""
        try:
            text = self.playlist.read_text()
        except OSError:
            return []
        return [x for x in text.splitlines() if x and not x.startswith("#")]

    def start(self) -> None:
        for old in self.dir.iterdir():
            old.unlink()
        cmd = [
            self.ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            *(["-stream_loop", "-1"] if self.loop else []),
            "-i",
            str(self.file),
            "-c",
            "copy",
            "-t",
            str(self.max_s),
            "-f",
            "hls",
            "-hls_time",
            str(self.hls_time),
            "-hls_list_size",
            str(self.list_size),
            "-hls_flags",
            "delete_segments",
            "-hls_segment_filename",
            str(self.dir / "seg%05d.ts"),
            str(self.playlist),
        ]
        child = _Child(cmd)
        self.child = child

        def ready() -> bool:
            if len(self.segments()) >= self.min_segments:
                return True
            if not child.alive() and not (child.returncode() == 0 and self.segments()):
                raise ServerError(f"ffmpeg -f hls exited with {child.returncode()}\n{child.stderr_tail()}")
            return not child.alive()  # a short file ended cleanly with fewer segments

        try:
            wait_until(ready, self.start_timeout, "ffmpeg -f hls", None)
        except ServerError:
            child.kill()
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.child is not None:
            self.child.stop(sig)
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None  # type: ignore[assignment]
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, down_s: float = 0.0, sig: int = signal.SIGKILL) -> None:
        """Kill ffmpeg (the HTTP side stays up), wait `down_s` s, start a new playlist."""
        if self.child is not None:
            self.child.stop(sig)
        time.sleep(down_s)
        self.start()


# ---------------------------------------------------------------- stalling sockets


class StallServer(_Server):
    """TCP server on 127.0.0.1 that never streams.

    mode="silent":   accept, read nothing, send nothing, keep the connection open.
    mode="http-200": read the request head, send ``HTTP/1.1 200 OK`` + headers, then stall.
    mode="close":    accept and close at once.
    Use ``url_for("rtsp", "/live")`` etc. for a URL pointing at it.
    """

    def __init__(self, mode: str = "silent", port: int | None = None, content_type: str = "video/mp2t") -> None:
        if mode not in ("silent", "http-200", "close"):
            raise ValueError("mode must be silent, http-200 or close")
        self.mode, self.content_type = mode, content_type
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, port or 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url_for(self, scheme: str = "http", path: str = "/stream") -> str:
        return f"{scheme}://{LOOPBACK}:{self.port}{path}"

    @property
    def url(self) -> str:
        return self.url_for("http", "/stream.ts")

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            if self.mode == "close":
                conn.close()
                continue
            self.conns.append(conn)
            if self.mode == "http-200":
                conn.settimeout(2.0)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: "
                        + self.content_type.encode()
                        + b"\r\nConnection: keep-alive\r\n\r\n"
                    )
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for conn in self.conns:
            conn.close()
        self.sock.close()


# ---------------------------------------------------------------- test video

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "white": (255, 255, 255),
    "yellow": (255, 255, 0),
}
INDEX_BITS = 16
INDEX_ROWS = 16


def _stamp_index(rgb: Any, index: int) -> None:
    """Write `index` as INDEX_BITS white/black blocks across the top INDEX_ROWS rows."""
    bw = rgb.shape[1] // INDEX_BITS
    for bit in range(INDEX_BITS):
        rgb[:INDEX_ROWS, bit * bw : (bit + 1) * bw] = 255 if (index >> bit) & 1 else 0


def read_frame_index(rgb: Any) -> int:
    """Frame index stamped by make_test_video, from an RGB (H, W, 3) uint8 array
    (``frame.to_ndarray(format="rgb24")``)."""
    bw = rgb.shape[1] // INDEX_BITS
    value = 0
    for bit in range(INDEX_BITS):
        block = rgb[2 : INDEX_ROWS - 2, bit * bw + 2 : (bit + 1) * bw - 2]
        if block.mean() > 128:
            value |= 1 << bit
    return value


def make_test_video(
    path: os.PathLike[str] | str,
    *,
    seconds: float = 20.0,
    fps: int = 10,
    width: int = 320,
    height: int = 240,
    appear_at: float = 6.0,
    color: str = "red",
    stamp_index: bool = True,
) -> Path:
    """Write an H.264 MP4: black frames, a centred `color` square (side height/3) from
    `appear_at` s on, keyframe every second, no B-frames; frame index stamped in the
    top rows (``read_frame_index``). Returns the path."""
    import av  # the venv has PyAV; imported here so the module imports without it
    import numpy as np

    path = Path(path)
    rgb_colour = np.array(COLORS[color], dtype=np.uint8)
    side = height // 3
    x0, y0 = (width - side) // 2, (height - side) // 2
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = fps
        stream.codec_context.max_b_frames = 0
        stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "keyint_min": str(fps),
            "sc_threshold": "0",
            "crf": "23",
        }
        for i in range(round(seconds * fps)):
            img = np.zeros((height, width, 3), dtype=np.uint8)
            if i / fps >= appear_at:
                img[y0 : y0 + side, x0 : x0 + side] = rgb_colour
            if stamp_index:
                _stamp_index(img, i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
