#!/usr/bin/python3
"""Loopback RTSP test server (H.264 over RTP), built on GstRtspServer.

Run it with the *system* python3 (``/usr/bin/python3``): the GStreamer bindings
(python3-gst-1.0, gir1.2-gst-rtsp-server-1.0) live there, not in the venv.
Install them with ``tools/setup_system.sh``.

Sources (all re-encoded with x264enc, keyframe every second, no B-frames):

* ``--scene testsrc``  videotestsrc (``--pattern``), live.
* ``--scene appear``   black frame; a ``--color`` square appears ``--appear-at``
  seconds after the media started (frame index / fps, so exact in stream time).
  With ``--cycle C`` the scene repeats every C seconds (square visible while
  ``t % C >= appear_at``).
* ``--file PATH``      decode PATH and play it at real-time speed, once
  (clients get EOS at the end) or forever with ``--loop``.

The media factory is shared: every client sees the same stream; the media (and
the scene clock) starts with the first client and is torn down when the last
one leaves, so the next client starts a fresh media (scene time 0 again).
Both RTP/AVP (UDP) and RTP/AVP/TCP (interleaved) transports are allowed.

On stdout it prints exactly one line ``READY rtsp://127.0.0.1:PORT/MOUNT`` once
it accepts connections (``--port 0`` picks a free port). SIGTERM/SIGINT stop it
cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "white": (255, 255, 255),
    "yellow": (255, 255, 0),
    "black": (0, 0, 0),
}


def rgb_to_yuv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """BT.601 limited-range RGB -> (Y, U, V)."""
    y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
    u = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
    v = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
    return tuple(max(0, min(255, round(c))) for c in (y, u, v))  # type: ignore[return-value]


def make_i420(width: int, height: int, square: tuple[int, int, int] | None) -> bytes:
    """One I420 frame: black, plus a centred square of RGB colour `square` (side = h/3)."""
    y_plane = bytearray([16]) * (width * height)
    u_plane = bytearray([128]) * ((width // 2) * (height // 2))
    v_plane = bytearray(u_plane)
    if square is not None:
        yy, uu, vv = rgb_to_yuv(*square)
        side = (height // 3) & ~1
        x0, y0 = ((width - side) // 2) & ~1, ((height - side) // 2) & ~1
        for row in range(y0, y0 + side):
            y_plane[row * width + x0 : row * width + x0 + side] = bytes([yy]) * side
        cw = width // 2
        for row in range(y0 // 2, (y0 + side) // 2):
            u_plane[row * cw + x0 // 2 : row * cw + (x0 + side) // 2] = bytes([uu]) * (side // 2)
            v_plane[row * cw + x0 // 2 : row * cw + (x0 + side) // 2] = bytes([vv]) * (side // 2)
    return bytes(y_plane + u_plane + v_plane)


INDEX_BITS, INDEX_ROWS = 16, 16  # same layout as servers.make_test_video / read_frame_index


def stamp_index(frame: bytes, width: int, index: int) -> bytes:
    """Copy of I420 `frame` with `index` as 16 white/black blocks in the top 16 luma rows."""
    out = bytearray(frame)
    bw = width // INDEX_BITS
    row = b"".join((b"\xeb" if (index >> bit) & 1 else b"\x10") * bw for bit in range(INDEX_BITS))
    row = row + b"\x10" * (width - len(row))
    for r in range(INDEX_ROWS):
        out[r * width : (r + 1) * width] = row
    return bytes(out)


def encoder_tail(fps: int, bitrate_kbps: int) -> str:
    """x264 (zerolatency, keyframe every `fps` frames) + RTP payloader named pay0."""
    return (
        f"videoconvert ! video/x-raw,format=I420 ! "
        f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} "
        f"key-int-max={fps} bframes=0 ! video/x-h264,profile=constrained-baseline ! "
        f"rtph264pay name=pay0 pt=96 config-interval=1"
    )


class Pusher:
    """Feeds an appsrc at real-time pace from `next_frame(i)` in a thread.

    `next_frame(i)` returns the bytes of frame i, or None for end of stream.
    Pushing starts at the first ``need-data`` (i.e. once the media is PLAYING,
    so nothing queues up during RTSP DESCRIBE/SETUP); buffers get uniform
    timestamps ``base + i/fps`` where base is the running time of the first one.
    """

    def __init__(self, appsrc: Gst.Element, fps: int, next_frame: Callable[[int], bytes | None]) -> None:
        self.appsrc, self.fps, self.next_frame = appsrc, fps, next_frame
        self.stop = threading.Event()
        self.wanted = threading.Event()
        appsrc.connect("need-data", lambda *_: self.wanted.set())
        self.thread = threading.Thread(target=self.run, daemon=True)

    def running_time(self) -> int:
        clock = self.appsrc.get_clock()
        return clock.get_time() - self.appsrc.get_base_time() if clock else 0

    def run(self) -> None:
        while not self.wanted.wait(0.1):
            if self.stop.is_set():
                return
        dur = Gst.SECOND // self.fps
        base, t0, i = self.running_time(), time.monotonic(), 0
        while not self.stop.is_set():
            data = self.next_frame(i)
            if data is None:
                self.appsrc.emit("end-of-stream")
                return
            buf = Gst.Buffer.new_wrapped(data)
            buf.pts, buf.duration = base + i * dur, dur
            if self.appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                return  # flushing / media torn down
            i += 1
            delay = t0 + i / self.fps - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)


class FileReader:
    """Decodes a video file to raw I420 frames through an appsink; can loop."""

    def __init__(self, path: str, loop: bool) -> None:
        self.loop = loop
        self.pipe = Gst.parse_launch(
            f'filesrc location="{path}" ! decodebin ! videoconvert ! '
            "video/x-raw,format=I420 ! appsink name=sink sync=false max-buffers=4"
        )
        self.sink = self.pipe.get_by_name("sink")
        if not os.path.isfile(path):
            raise SystemExit(f"ERROR no such file: {path}")
        self.pipe.set_state(Gst.State.PAUSED)
        changed, _state, _pending = self.pipe.get_state(10 * Gst.SECOND)  # FAILURE at once on errors
        sample = self.sink.emit("try-pull-preroll", 0) if changed == Gst.StateChangeReturn.SUCCESS else None
        if sample is None:
            self.close()
            raise SystemExit(f"ERROR cannot decode {path} (GStreamer)")
        s = sample.get_caps().get_structure(0)
        self.width, self.height = s.get_value("width"), s.get_value("height")
        ok, num, den = s.get_fraction("framerate")
        self.fps = max(1, round(num / den)) if ok and num and den else 10
        self.pipe.set_state(Gst.State.PLAYING)

    def caps(self) -> str:
        return f"video/x-raw,format=I420,width={self.width},height={self.height},framerate={self.fps}/1"

    def frame(self, _i: int) -> bytes | None:
        for _ in range(2):
            sample = self.sink.emit("try-pull-sample", 5 * Gst.SECOND)
            if sample is not None:
                buf = sample.get_buffer()
                ok, info = buf.map(Gst.MapFlags.READ)
                try:
                    return bytes(info.data)
                finally:
                    buf.unmap(info)
            if not (self.loop and self.sink.get_property("eos")):
                return None
            self.pipe.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return None

    def close(self) -> None:
        self.pipe.set_state(Gst.State.NULL)


class Factory(GstRtspServer.RTSPMediaFactory):
    """Shared media factory; appsrc-based media get a Pusher when configured."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.args = args
        self.set_shared(True)
        self.set_protocols(GstRtsp.RTSPLowerTrans.UDP | GstRtsp.RTSPLowerTrans.TCP)
        self.set_latency(0)
        a = args
        if a.file is None and a.scene == "testsrc":
            self.set_launch(
                f"( videotestsrc is-live=true pattern={a.pattern} ! "
                f"video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1 ! "
                f"{encoder_tail(a.fps, a.bitrate)} )"
            )
            return
        if a.file is not None:
            probe = FileReader(a.file, loop=False)
            caps, fps = probe.caps(), probe.fps
            probe.close()
        else:
            caps, fps = (f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1"), a.fps
        self.fps = fps
        self.set_launch(
            f"( appsrc name=src is-live=true format=time "
            f"max-bytes=2000000 block=true caps={caps} ! {encoder_tail(fps, a.bitrate)} )"
        )
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory: Factory, media: GstRtspServer.RTSPMedia) -> None:
        a = self.args
        appsrc = media.get_element().get_by_name("src")
        if a.file is not None:
            reader: FileReader | None = FileReader(a.file, a.loop)
            next_frame = reader.frame
        else:
            reader = None
            rgb = COLORS[a.color]
            frames = (make_i420(a.width, a.height, None), make_i420(a.width, a.height, rgb))

            def next_frame(i: int) -> bytes | None:
                t = i / self.fps
                if a.duration and t >= a.duration:
                    return None
                phase = t % a.cycle if a.cycle else t
                return stamp_index(frames[1] if phase >= a.appear_at else frames[0], a.width, i)

        pusher = Pusher(appsrc, self.fps, next_frame)

        def on_unprepared(_m: GstRtspServer.RTSPMedia) -> None:
            pusher.stop.set()
            if reader is not None:
                reader.close()

        media.connect("unprepared", on_unprepared)
        pusher.thread.start()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = free port)")
    p.add_argument("--mount", default="/live")
    p.add_argument("--scene", choices=("testsrc", "appear"), default="testsrc")
    p.add_argument("--pattern", default="ball", help="videotestsrc pattern (testsrc scene)")
    p.add_argument("--appear-at", type=float, default=6.0, help="seconds (appear scene)")
    p.add_argument("--cycle", type=float, default=0.0, help="repeat the appear scene every N s")
    p.add_argument("--duration", type=float, default=0.0, help="EOS after N s (appear scene; 0=never)")
    p.add_argument("--color", choices=sorted(COLORS), default="red")
    p.add_argument("--file", help="play this video file at real-time speed")
    p.add_argument("--loop", action="store_true", help="loop --file forever")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--bitrate", type=int, default=500, help="kbit/s")
    p.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, Factory(args))
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: (loop.quit(), False)[1])
    if args.parent_pid:

        def parent_alive() -> bool:
            try:
                os.kill(args.parent_pid, 0)
                return True
            except ProcessLookupError:
                loop.quit()
                return False

        GLib.timeout_add_seconds(1, parent_alive)
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
