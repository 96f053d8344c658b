"""GPU speed (issue 19), in one process, no Ray or Redis: NVDEC ingest, graph decode steps, batching.

1. ingest of a 1080p30 H.264 clip at 1 fps: decode only (PyAV on CPU, NVDEC; 1 and k decoders
   in threads, each its own run of the clip), encode only, and decode → encode pipelined;
2. the decode step of the bench-gpu LM (a ~1.1B Llama, random bf16 weights, 11 gated
   cross-attention layers) eager vs CUDA graph, against the weight-read floor (the LM's bytes
   / the copy bandwidth measured here), with the tokens of both compared;
3. batched answers at 1/8/32 concurrent questions (each its own media), graph decoding;
4. 10 questions on a 10-minute clip: answered from cached latents (in memory here; Redis adds a
   few ms per question) vs decoding and encoding the clip again for each question.

python bench/gpu_speed.py --out $OUT          # tables to stdout and $OUT/gpu_speed.txt, numbers to .json
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Table, log, machine_line, make_clip, median


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        _sync()
        clock = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - clock)
    return median(times)


# --- 1. ingest --------------------------------------------------------------------------------------


def _decode_runs(clip: Path, decoder: str, runs: int, seconds: float, cfg) -> tuple[list, str]:
    """Decode the clip as ``runs`` parallel runs (threads); returns the windows and the decoder used."""
    from dataclasses import replace

    from heron.pipeline.decode import VideoDecoder

    bounds = [(seconds * i / runs, seconds * (i + 1) / runs) for i in range(runs)]
    out: list[list] = [[] for _ in bounds]
    names: list[str] = ["" for _ in bounds]

    def work(i: int) -> None:
        start, end = bounds[i]
        decode = VideoDecoder(clip, replace(cfg, decoder=decoder), start=start or None, end=end)
        out[i] = list(decode)
        names[i] = decode.stats.decoder + (f" ({decode.stats.fallback_reason})" if decode.stats.fallback_reason else "")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [w for run in out for w in run], names[0]


def bench_ingest(model, args, results: dict) -> Table:
    import numpy as np
    import torch

    from heron.config import DecodeConfig
    from heron.pipeline.decode.torchcodec_reader import gpu_decode_unavailable

    seconds = args.clip_seconds
    log(f"ingest: writing a {seconds:g} s 1080p30 clip")
    clip = make_clip(seconds, width=1920, height=1080, fps=30, gop_s=2.0, preset="ultrafast")
    cfg = DecodeConfig(fps=1.0, window_frames=8, size=224)
    table = Table(
        f"Ingest: {seconds:g} s 1080p30 H.264 clip, keyframe every 2 s, 1 fps, 8-frame windows, size 224"
        " (bench-gpu encoder)",
        ["variant", "decoder", "s (median of 3)", "video-s/s"],
    )
    gpu_why = gpu_decode_unavailable()
    variants = [("pyav", 1), ("pyav", args.cpu_decoders)] + (
        [] if gpu_why else [("torchcodec", 1), ("torchcodec", args.gpu_decoders)]
    )
    for decoder, runs in variants:
        name: dict[str, str] = {}
        wall = _timed(lambda d=decoder, k=runs, n=name: n.setdefault("d", _decode_runs(clip, d, k, seconds, cfg)[1]))
        results[f"decode_{decoder}_x{runs}_video_s_per_s"] = seconds / wall
        table.add(f"decode: {decoder} x{runs}", name["d"], wall, seconds / wall)
    windows, _ = _decode_runs(clip, "pyav", args.cpu_decoders, seconds, cfg)

    def encode_all():
        for first in range(0, len(windows), 4):
            group = [w.frames for w in windows[first : first + 4] if len(w.frames) == 8]
            if group:
                model.encode(torch.from_numpy(np.stack(group)))  # [B, T, H, W, 3] → [B, R, d]

    with torch.inference_mode():
        encode_all()  # warm-up
        wall = _timed(encode_all)
    results["encode_video_s_per_s"] = seconds / wall
    table.add("encode: stage (4 windows per call)", "-", wall, seconds / wall)
    best = "pyav" if gpu_why else "torchcodec"
    runs = args.cpu_decoders if gpu_why else args.gpu_decoders

    def pipeline():  # decode threads feed a queue; this thread encodes as windows arrive
        ready: queue.Queue = queue.Queue(maxsize=32)

        def produce():
            windows, _ = _decode_runs(clip, best, runs, seconds, cfg)
            for w in windows:
                ready.put(w)
            ready.put(None)

        threading.Thread(target=produce, daemon=True).start()
        group = []
        with torch.inference_mode():
            while (w := ready.get()) is not None:
                group.append(w.frames)
                if len(group) == 4:
                    model.encode(torch.from_numpy(np.stack(group)))
                    group = []

    wall = _timed(pipeline)
    results["ingest_video_s_per_s"] = seconds / wall
    bound = min(results[f"decode_{best}_x{runs}_video_s_per_s"], results["encode_video_s_per_s"])
    results["ingest_over_bound"] = results["ingest_video_s_per_s"] / bound
    table.add(f"ingest: {best} x{runs} → encode, in one process", best, wall, seconds / wall)
    if gpu_why:
        table.notes.append(f"GPU decoding unavailable here: {gpu_why}")
    table.notes.append("decode x k: k threads, each decoding its own run of the clip (VideoDecoder start/end)")
    table.headline = (
        f"HEADLINE gpu ingest: {results['ingest_video_s_per_s']:.1f} video-s/s of 1080p30 at 1 fps "
        f"(target >= 60), {results['ingest_over_bound']:.2f} x min(decode, encode) (target >= 0.9)"
    )
    return table


# --- 2. decode step -----------------------------------------------------------------------------------


def _copy_bandwidth() -> float:
    import torch

    x = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    y.copy_(x)
    wall = _timed(lambda: y.copy_(x), rounds=5)
    return 2 * x.numel() / wall  # bytes read + written per second


def _lm_bytes(model) -> int:
    """Bytes one decode step must read: every LM weight (and gated block) except the input embedding."""
    embedding = model.lm.get_input_embeddings().weight
    tied = model.lm.get_output_embeddings().weight is embedding
    total = sum(p.numel() * p.element_size() for p in model.lm.parameters())
    return total if tied else total - embedding.numel() * embedding.element_size()


def _no_stops(model) -> None:
    model.stop_token_ids = lambda stop_at_end_of_chunk=True: []  # random weights stop anywhere


def _question_batch(model, rows: int, windows: int, tokens: int, seed: int = 0):
    import torch

    from heron.pipeline.prompts import question_prompt

    generator = torch.Generator().manual_seed(seed)
    media = [
        [torch.randn(windows * model.encoder.num_latents, model.encoder.dim, generator=generator)] for _ in range(rows)
    ]  # each row its own [k*R, d] media
    prompts = [question_prompt(f"What happens in the video, part {i}?") for i in range(rows)]
    return model.prepare(prompts, media, max_new_tokens=tokens)


def bench_decode_step(model, args, results: dict) -> Table:
    import torch

    from heron.models import graphs

    tokens, windows = args.tokens, args.windows
    batch = _question_batch(model, 1, windows, tokens)
    bandwidth = _copy_bandwidth()
    floor_ms = 1e3 * _lm_bytes(model) / bandwidth

    def eager(n):
        return model.generate_ids(batch, max_new_tokens=n)

    def graphed(n):
        return torch.stack(list(graphs.decode_steps(model, batch, max_new_tokens=n)), 1)

    table = Table(
        f"Decode step: bench-gpu LM (bf16, random weights), 1 question, {windows} windows"
        f" x {model.encoder.num_latents} latents",
        ["variant", "ms/step (marginal)", "x weight-read floor"],
    )
    with torch.inference_mode():
        reference, got = eager(tokens), graphed(tokens)  # also captures the graph
        agree = float((reference == got).float().mean())
        for name, fn in (("eager (dynamic cache)", eager), ("CUDA graph (static cache)", graphed)):
            short, long = _timed(lambda f=fn: f(8)), _timed(lambda f=fn: f(tokens))
            step_ms = 1e3 * (long - short) / (tokens - 8)
            results[f"step_ms_{name.split()[0].lower().replace('cuda', 'graph')}"] = step_ms
            table.add(name, step_ms, step_ms / floor_ms)
    results.update(floor_ms=floor_ms, copy_gb_s=bandwidth / 1e9, graph_eager_token_agreement=agree)
    table.notes += [
        f"floor = {_lm_bytes(model) / 1e9:.2f} GB of LM weights / {bandwidth / 1e9:.0f} GB/s"
        f" (device copy measured here) = {floor_ms:.3f} ms",
        f"graph vs eager tokens over {tokens} greedy steps: {agree:.1%} equal (bf16: a near-tie may flip)",
        "marginal = (time for N tokens - time for 8 tokens) / (N - 8): prefill excluded",
    ]
    table.headline = (
        f"HEADLINE gpu decode step: {results['step_ms_graph']:.2f} ms = "
        f"{results['step_ms_graph'] / floor_ms:.1f} x the weight-read floor (target <= 3); "
        f"eager {results['step_ms_eager']:.1f} ms"
    )
    return table


# --- 3. batched answers ------------------------------------------------------------------------------


def bench_batching(model, args, results: dict) -> Table:
    import torch

    from heron.models import graphs

    tokens = args.answer_tokens
    table = Table(
        f"Batched answers: B concurrent questions, each with its own {args.windows} windows, {tokens} tokens,"
        " graph decoding",
        ["B", "s per batch", "answers/s", "x sequential"],
    )
    sequential = None
    for rows in args.batches:
        batch = _question_batch(model, rows, args.windows, tokens, seed=rows)
        with torch.inference_mode():
            run = lambda b=batch: list(graphs.decode_steps(model, b, max_new_tokens=tokens))  # noqa: E731
            run()  # capture this bucket's graph
            wall = _timed(run)
        rate = rows / wall
        sequential = sequential or rate
        results[f"answers_per_s_b{rows}"] = rate
        table.add(rows, wall, rate, rate / sequential)
    top = args.batches[-1]
    speedup = results[f"answers_per_s_b{top}"] / sequential
    table.headline = f"HEADLINE gpu batching: {top} concurrent = {speedup:.1f} x sequential (target >= 10)"
    return table


# --- 4. cached vs naive -------------------------------------------------------------------------------


def bench_cached(model, args, results: dict) -> Table:
    import numpy as np
    import torch

    from heron.config import DecodeConfig
    from heron.models import graphs
    from heron.pipeline.decode import VideoDecoder
    from heron.pipeline.prompts import question_prompt

    seconds = args.long_seconds
    log(f"cached: writing a {seconds:g} s 320x180 15 fps clip")
    clip = make_clip(seconds, width=320, height=180, fps=15, gop_s=2.0, preset="ultrafast")
    cfg = DecodeConfig(fps=1.0, window_frames=8, size=224)

    def encode_clip() -> list[torch.Tensor]:
        windows = list(VideoDecoder(clip, cfg))
        latents = []
        for first in range(0, len(windows), 8):
            group = [w.frames for w in windows[first : first + 8]]
            full = [g for g in group if len(g) == 8]
            if full:
                latents += list(model.encode(torch.from_numpy(np.stack(full))))  # [R, d] each
        return latents

    def answer(latents: list[torch.Tensor], question: str):
        chosen = np.linspace(0, len(latents) - 1, num=min(16, len(latents))).round().astype(int)  # answer.max_windows
        media = torch.cat([latents[i] for i in chosen])  # [16*R, d]
        batch = model.prepare([question_prompt(question)], [[media]], max_new_tokens=args.answer_tokens)
        return list(graphs.decode_steps(model, batch, max_new_tokens=args.answer_tokens))

    questions = [f"What happens at minute {i}?" for i in range(10)]
    with torch.inference_mode():
        cached = encode_clip()
        answer(cached, questions[0])  # warm-up (graph capture)
        cached_s = _timed(lambda: [answer(cached, q) for q in questions], rounds=1)
        naive_one = _timed(lambda: answer(encode_clip(), questions[0]), rounds=args.naive_questions)
    ratio = naive_one * 10 / cached_s
    results.update(cached_10_s=cached_s, naive_per_question_s=naive_one, naive_over_cached=ratio)
    table = Table(
        f"Cached vs naive: 10 questions on a {seconds / 60:g}-minute 320x180 15 fps clip ({len(cached)} windows)",
        ["variant", "s for 10 questions"],
    )
    table.add("cached latents (in memory; Redis adds ms)", cached_s)
    table.add(f"naive: decode + encode + answer per question (median of {args.naive_questions}) x 10", naive_one * 10)
    table.headline = f"HEADLINE gpu cached: naive / cached for 10 questions = {ratio:.1f}x (target >= 10x)"
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="bench-gpu")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_speed.txt and gpu_speed.json")
    parser.add_argument("--only", nargs="*", default=["ingest", "step", "batch", "cached"])
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--cpu-decoders", type=int, default=8)
    parser.add_argument("--gpu-decoders", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--long-seconds", type=float, default=600.0)
    parser.add_argument("--naive-questions", type=int, default=2)
    args = parser.parse_args()

    import torch

    from heron.config import load_pipeline_config
    from heron.models import load_model

    if not torch.cuda.is_available():
        sys.exit("bench/gpu_speed.py needs a CUDA device")
    log("building the bench-gpu model (random weights)")
    cfg = load_pipeline_config(args.config)
    model = load_model(cfg.model, device="cuda", trainable="none")
    _no_stops(model)
    results: dict = {"machine": machine_line()}
    benches = {"ingest": bench_ingest, "step": bench_decode_step, "batch": bench_batching, "cached": bench_cached}
    lines = []
    for name in args.only:
        log(f"{name} ...")
        clock = time.perf_counter()
        try:
            text = benches[name](model, args, results).render()
        except Exception as exc:  # keep going: one failing part must not lose the others' numbers
            text = f"## {name}: FAILED {type(exc).__name__}: {exc}"
        results[f"{name}_wall_s"] = time.perf_counter() - clock
        lines += [text, f"  {machine_line()}", ""]
        print(lines[-3], lines[-2], sep="\n", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_speed.txt").write_text("\n".join(lines))
        (args.out / "gpu_speed.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
