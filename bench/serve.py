"""The HTTP service: what a question costs through `heron serve`, and what batching buys under load.

    .venv/bin/python bench/serve.py              # bench-cpu preset

1. A cached question through HTTP (POST /v1/ask to a real uvicorn server on loopback) vs the same
   call on the same warm Heron in-process, interleaved: the service's own overhead.
2. Throughput with 1, 8 and 32 concurrent clients (threads, each asking in a loop) vs one client
   asking sequentially: concurrent questions share forward passes in the answer actor.
3. Time to the first streamed token (SSE) vs the latency of the same question not streamed.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Table, base_parser, interleaved, log, machine_line, make_clip, median, reproduce_line, spread

SCRIPT = "bench/serve.py"


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--clients", default="1,8,32", help="concurrency levels to measure")
    p.add_argument("--seconds", type=float, default=None, help="wall seconds per concurrency level")
    return p


def run(args) -> dict:
    import httpx
    import uvicorn

    from heron.api import create_app
    from heron.config import ServeConfig, load_pipeline_config
    from heron.service import Heron
    from heron.service.runtime import init_ray
    from heron.state.server import ThrowawayRedis

    rounds = args.rounds or (2 if args.quick else 15)
    seconds = args.seconds or (2.0 if args.quick else 20.0)
    levels = [int(n) for n in args.clients.split(",")]
    cfg = load_pipeline_config(args.config)
    if args.device:
        cfg.device = args.device
    clip = make_clip(8, width=128, height=96, fps=8, seed=3)
    init_ray()
    with ThrowawayRedis() as redis_server:
        serve_cfg = ServeConfig(port=_free_port(), allow_paths=[str(clip.parent)], max_concurrent=256)
        app = create_app(
            lambda: Heron(cfg, redis_url=redis_server.url, progress=False),
            serve_cfg,
            upload_dir=clip.parent / "uploads",
        )
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=serve_cfg.port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{serve_cfg.port}"
        try:
            _wait_ready(url)
            heron = app.state.service.heron
            body = {"source": str(clip), "question": "What moves in the video?"}
            with httpx.Client(base_url=url, timeout=300) as http:
                http.post("/v1/ask", json=body).raise_for_status()  # ingest once: cached from here on
                log(f"HTTP vs in-process: {rounds} interleaved rounds")
                times = interleaved(
                    {
                        "in-process: Heron.ask": lambda: heron.ask(str(clip), body["question"]),
                        "HTTP: POST /v1/ask": lambda: http.post("/v1/ask", json=body).raise_for_status(),
                    },
                    rounds,
                )
                ttft, whole = _first_token(http, body, rounds)
            log(f"throughput at {levels} clients, {seconds:g} s each")
            rates = {n: _throughput(url, body, n, seconds) for n in levels}
            stats = heron.answer_stats()
        finally:
            server.should_exit = True
            thread.join(timeout=60)

    http_ratio = median(times["HTTP: POST /v1/ask"]) / median(times["in-process: Heron.ask"])
    table = Table(
        f"Serving a cached question ({args.config}, answers of up to {cfg.answer.max_new_tokens} tokens)",
        ["variant", "s (median)", "rounds min–max"],
    )
    for name, values in times.items():
        table.add(name, median(values), spread(values))
    table.add("streamed: first token (SSE)", median(ttft), spread(ttft))
    table.add("not streamed: whole answer", median(whole), spread(whole))
    base = rates[levels[0]]
    throughput = Table(
        "Throughput: questions/s with N concurrent clients (HTTP, batched in the answer actor)",
        ["clients", "questions/s", "x 1 client"],
    )
    for n, rate in rates.items():
        throughput.add(n, rate, rate / base)
    top = levels[-1]
    throughput.notes += [
        f"answer actor: {stats.get('batches', 0)} batches held {stats.get('requests', 0)} questions",
        machine_line(),
        reproduce_line(SCRIPT, args, ["config", "device", "rounds", "clients", "seconds"]),
    ]
    table.headline = (
        f"HEADLINE serve: HTTP / in-process p50 = {http_ratio:.2f} (target <= 1.2); first streamed "
        f"token / whole answer = {median(ttft) / median(whole):.2f}"
    )
    throughput.headline = (
        f"HEADLINE serve: {top} concurrent clients / 1 = {rates[top] / base:.1f}x (target >= 4x on CPU)"
    )
    print(table.render(), "", throughput.render(), sep="\n", flush=True)
    return {
        "http_ratio": http_ratio,
        "concurrency_speedup": rates[top] / base,
        "ttft_ratio": median(ttft) / median(whole),
    }


def _first_token(http, body: dict, rounds: int) -> tuple[list[float], list[float]]:
    ttft, whole = [], []
    for _ in range(rounds):
        clock = time.perf_counter()
        first = None
        with http.stream("POST", "/v1/ask", json={**body, "stream": True}) as response:
            for line in response.iter_lines():
                if first is None and line.startswith("event: token"):
                    first = time.perf_counter() - clock
        if first is not None:
            ttft.append(first)
        clock = time.perf_counter()
        http.post("/v1/ask", json=body).raise_for_status()
        whole.append(time.perf_counter() - clock)
    return ttft or [float("nan")], whole


def _throughput(url: str, body: dict, clients: int, seconds: float) -> float:
    import httpx

    deadline = time.perf_counter() + seconds
    done = [0] * clients

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while time.perf_counter() < deadline:
                http.post("/v1/ask", json={**body, "question": f"What moves in the video? {i}"}).raise_for_status()
                done[i] += 1

    clock = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return sum(done) / (time.perf_counter() - clock)


def _wait_ready(url: str, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError("the benchmark server did not become ready")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> dict:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
