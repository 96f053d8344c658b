"""Exercise every server in servers.py with PyAV and print what happens (timings, errors, pts).

Run from the venv:  .venv/bin/python tools/live/selfcheck.py [--only rtsp-tcp,hls,...]
Takes about 2-3 minutes. It is the measurement behind /work/notes/live_research.md, kept
runnable so the facts can be re-checked after a PyAV/FFmpeg upgrade. Not a pytest file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers

OPEN_S, READ_S = 8.0, 3.0  # av.open(timeout=(OPEN_S, READ_S))


def exc_name(e: BaseException) -> str:
    return f"{type(e).__module__}.{type(e).__name__}"


def read(
    url: str,
    opts: dict[str, str],
    fmt: str | None,
    n: int,
    action: Callable[[], None] | None = None,
    act_after: float = 2.0,
    max_s: float = 30.0,
) -> dict[str, Any]:
    """Open `url`, decode up to `n` frames (or until error/end); run `action` `act_after` s after open."""
    res: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        c = av.open(url, timeout=(OPEN_S, READ_S), options=opts, format=fmt)
    except Exception as e:
        return {"open_error": exc_name(e), "after_s": round(time.monotonic() - t0, 2)}
    res["open_s"] = round(time.monotonic() - t0, 2)
    s = c.streams.video[0]
    res.update(start_time=s.start_time, time_base=str(s.time_base), c_start_time=c.start_time)
    frames: list[tuple[float, int | None, int]] = []
    if action is not None:
        timer = threading.Timer(act_after, lambda: (res.__setitem__("act_t", time.monotonic()), action()))
        timer.daemon = True
        timer.start()
    try:
        for f in c.decode(s):
            frames.append((time.monotonic(), f.pts, servers.read_frame_index(f.to_ndarray(format="rgb24"))))
            if len(frames) >= n or time.monotonic() - t0 > max_s:
                res["end"] = "stopped reading"
                break
        else:
            res["end"] = "iteration ended, no exception"
    except Exception as e:
        res["end"] = f"{exc_name(e)}: {str(e).split(':')[0]}"
    t_end = time.monotonic()
    c.close()
    if action is not None:
        timer.join(30)  # e.g. a restart still in progress
    if "act_t" in res:
        res["end_after_action_s"] = round(t_end - res.pop("act_t"), 2)
    res["frames"] = len(frames)
    res["first"] = [(p, i) for _, p, i in frames[:3]]
    res["last"] = [(p, i) for _, p, i in frames[-1:]]
    return res


def check(name: str, make: Callable[[], Any], opts: dict[str, str], fmt: str | None = None) -> None:
    t = time.monotonic()
    srv = make()
    print(f"\n== {name}: server ready in {time.monotonic() - t:.2f}s  {srv.url}")
    try:
        print("  read           ", read(srv.url, opts, fmt, 30))
        if hasattr(srv, "wait_ready"):
            srv.wait_ready(5)
        info: dict[str, float] = {}

        def kill() -> None:
            t1 = time.monotonic()
            srv.restart()
            info["restart_s"] = round(time.monotonic() - t1, 2)

        print("  kill+restart   ", read(srv.url, opts, fmt, 500, kill), info)
        if hasattr(srv, "wait_ready"):
            srv.wait_ready(5)
        print("  reopen         ", read(srv.url, opts, fmt, 5))
        if hasattr(srv, "wait_ready"):
            srv.wait_ready(5)
        print("  pause (SIGSTOP)", read(srv.url, opts, fmt, 500, srv.pause))
    finally:
        srv.resume()
        srv.stop()


def stalls() -> None:
    print("\n== stalling / refusing servers, timeout=(2, 2)")
    for mode in ("silent", "http-200", "close"):
        with servers.StallServer(mode) as s:
            for url, opts in (
                (s.url_for("rtsp", "/live"), {"rtsp_transport": "tcp"}),
                (s.url_for("rtsp", "/live"), {"rtsp_transport": "udp"}),
                (s.url_for("http", "/stream.ts"), {}),
            ):
                t0 = time.monotonic()
                try:
                    av.open(url, timeout=(2, 2), options=opts).close()
                    r = "opened!"
                except Exception as e:
                    r = exc_name(e)
                print(
                    f"  {mode:9} {url.split(':')[0]:5} {opts.get('rtsp_transport', ''):4} "
                    f"{r} after {time.monotonic() - t0:.2f}s"
                )
    port = servers.free_port()
    for url in (f"rtsp://127.0.0.1:{port}/live", f"http://127.0.0.1:{port}/s.ts"):
        t0 = time.monotonic()
        try:
            av.open(url, timeout=(2, 2)).close()
        except Exception as e:
            print(f"  refused   {url.split(':')[0]:5}      {exc_name(e)} after {time.monotonic() - t0:.2f}s")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--only", default="", help="comma list: rtsp-tcp,rtsp-udp,rtsp-scene,ts,flv,mjpeg,hls,stall")
    only = set(filter(None, p.parse_args().only.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        clip = servers.make_test_video(Path(tmp) / "clip.mp4", seconds=20, appear_at=6)
        cases: dict[str, tuple[Callable[[], Any], dict[str, str], str | None]] = {
            "rtsp-tcp": (lambda: servers.RtspServer(clip), {"rtsp_transport": "tcp"}, None),
            "rtsp-udp": (lambda: servers.RtspServer(clip), {"rtsp_transport": "udp"}, None),
            "rtsp-scene": (lambda: servers.RtspServer(scene="appear", appear_at=2), {"rtsp_transport": "tcp"}, None),
            "ts": (lambda: servers.HttpTsServer(clip), {}, None),
            "flv": (lambda: servers.HttpFlvServer(clip), {}, None),
            "mjpeg": (lambda: servers.HttpMjpegServer(clip), {}, "mpjpeg"),
            "hls": (lambda: servers.HlsServer(clip), {}, None),
        }
        for name, (make, opts, fmt) in cases.items():
            if not only or name in only:
                try:
                    check(name, make, opts, fmt)
                except servers.ToolsMissing as e:
                    print(f"\n== {name}: SKIPPED ({e})")
        if not only or "stall" in only:
            stalls()
    return 0


if __name__ == "__main__":
    sys.exit(main())
