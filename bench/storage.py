"""Storage: Redis bytes per hour of video at a preset's settings.

    .venv/bin/python bench/storage.py            # bench-cpu preset
    .venv/bin/python bench/storage.py --config bench-gpu

Writes one hour of windows (``fps × 3600 / window_frames`` of them, latents [R, d] of the preset's
shape) through ``LatentStore.put_chunk`` — the pipeline's own writer — into a throwaway Redis,
then measures it two ways: the sum of ``MEMORY USAGE`` over every key written, and the server's
``used_memory`` delta. Nothing is decoded or encoded: the bytes depend only on the shape.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.common import Table, base_parser, log, machine_line, reproduce_line

SCRIPT = "bench/storage.py"


def latent_shape(model_name: str) -> tuple[int, int]:
    """(R, d) of a preset's window latents, from its config alone (no weights are built)."""
    from transformers import AutoConfig, CLIPVisionConfig, SiglipVisionConfig

    from heron.config import load_config

    cfg = load_config(model_name)
    if cfg.vision.name_or_path:
        vision = AutoConfig.from_pretrained(cfg.vision.name_or_path)
        vision = getattr(vision, "vision_config", vision)
    else:
        vision = {"clip": CLIPVisionConfig, "siglip": SiglipVisionConfig}[cfg.vision.kind](**cfg.vision.init)
    return cfg.resampler.num_latents, vision.hidden_size


def run(args) -> dict:
    import redis

    from heron.config import load_pipeline_config
    from heron.pipeline.fingerprint import encoder_settings
    from heron.state import LatentStore, RedisConnection
    from heron.state.server import ThrowawayRedis
    from heron.types import MediaChunk

    cfg = load_pipeline_config(args.config)
    num_latents, dim = latent_shape(cfg.model)
    window_s = cfg.decode.window_frames / cfg.decode.fps
    per_hour = math.ceil(args.hours * 3600 / window_s - 1e-9)
    payload = num_latents * dim * 2  # fp16 bytes per window
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((num_latents, dim), dtype=np.float32).astype(np.float16)
    log(f"storage: writing {per_hour} windows of [{num_latents}, {dim}] fp16")
    with ThrowawayRedis() as server:
        client = redis.Redis.from_url(server.url)
        store = LatentStore(RedisConnection(server.url), encoder_settings(cfg))
        source_id = "bench-storage-" + "0" * 16
        before = client.info("memory")["used_memory"]
        for index in range(per_hour):
            t_start = index * window_s
            store.put_chunk(MediaChunk(source_id, index, t_start, t_start + window_s - 1 / cfg.decode.fps, latents))
        store.set_source_info(source_id, duration_s=args.hours * 3600, n_windows=per_hour, complete=True)
        after = client.info("memory")["used_memory"]
        keys = list(client.scan_iter(match=f"{store.db.prefix}*", count=1000))
        by_key = sum(client.memory_usage(key, samples=0) or 0 for key in keys)
        chunk_key = store._chunk_key(source_id, 0)
        one_chunk = client.memory_usage(chunk_key, samples=0)
    hours = args.hours
    table = Table(
        f"Storage per hour of video ({cfg.model}: {cfg.decode.fps:g} fps, {cfg.decode.window_frames}-frame "
        f"windows = {per_hour / hours:.0f} windows/hour, latents {num_latents} x {dim} fp16)",
        ["measure", "bytes per window", "MB per hour of video", "x fp16 payload"],
    )
    table.add("fp16 latent payload (R x d x 2)", payload, payload * per_hour / hours / 1e6, 1.0)
    table.add("MEMORY USAGE of one chunk hash", one_chunk, one_chunk * per_hour / hours / 1e6, one_chunk / payload)
    table.add(
        f"MEMORY USAGE, all {len(keys)} keys (chunks + index)",
        by_key / per_hour,
        by_key / hours / 1e6,
        by_key / per_hour / payload,
    )
    table.add(
        "INFO used_memory delta",
        (after - before) / per_hour,
        (after - before) / hours / 1e6,
        (after - before) / per_hour / payload,
    )
    table.notes += [machine_line(), reproduce_line(SCRIPT, args, ["config", "hours"])]
    mb_per_hour = by_key / hours / 1e6
    table.headline = (
        f"HEADLINE storage: {mb_per_hour:.1f} MB of Redis per hour of video "
        f"= {by_key / per_hour / payload:.3f} x the fp16 latent payload"
    )
    print(table.render(), flush=True)
    return {
        "mb_per_hour": mb_per_hour,
        "used_memory_mb_per_hour": (after - before) / hours / 1e6,
        "overhead": by_key / per_hour / payload,
        "windows_per_hour": per_hour / hours,
    }


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=1.0, help="hours of video to write (results are per hour)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.quick:
        args.hours = 0.05
    return run(args)


if __name__ == "__main__":
    main()
