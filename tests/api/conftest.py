"""A real uvicorn server on a loopback port, over a real Heron (tiny model, the session's Ray and Redis)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from heron.api import create_app
from heron.config import ServeConfig, load_pipeline_config
from heron.service import Heron

API_KEY = "test-key-0123456789"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread
    videos: Path

    @property
    def service(self):
        return self.app.state.service

    def client(self, key: str | None = API_KEY, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def start_server(
    cfg: ServeConfig, heron_factory, *, api_key: str | None, upload_dir: Path, videos: Path, wait_ready: bool = True
) -> RunningServer:
    cfg.port = cfg.port or free_port(cfg.host)
    app = create_app(heron_factory, cfg, api_key=api_key, upload_dir=upload_dir, model_id="tiny")
    server = uvicorn.Server(
        uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", timeout_graceful_shutdown=10)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    running = RunningServer(f"http://{cfg.host}:{cfg.port}", app, server, thread, videos)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{running.url}/ready", timeout=2).status_code
            if status == 200 or (not wait_ready and status == 503):
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    running.stop()
    raise RuntimeError("the test server did not become ready within 120 s")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    from heron.data.video_writer import write_video
    from tests.media import moving_square_frames

    folder = tmp_path_factory.mktemp("served")
    write_video(folder / "square.mp4", moving_square_frames(seconds=8), fps=8)
    write_video(folder / "short.mp4", moving_square_frames(seconds=3)[:, :, ::-1].copy(), fps=8)
    return folder


@pytest.fixture(scope="module")
def server(ray_session, redis_url, videos, tmp_path_factory) -> Iterator[RunningServer]:
    namespace = f"heron-api-test-{time.monotonic_ns()}"
    cfg = ServeConfig(
        host="127.0.0.1",
        port=0,
        allow_paths=[str(videos)],
        allow_hosts=["127.0.0.2"],
        max_upload_mb=5,
        max_video_s=60,
        max_question_chars=500,
        max_tokens=64,
    )
    pipeline = load_pipeline_config("tiny")
    running = start_server(
        cfg,
        lambda: Heron(pipeline, redis_url=redis_url, progress=False, namespace=namespace),
        api_key=API_KEY,
        upload_dir=tmp_path_factory.mktemp("uploads"),
        videos=videos,
    )
    yield running
    heron = running.service.heron
    running.stop()
    heron.db.clear_all()
