"""Question latency: does answering grow with stream length, and what does caching the video save?

    .venv/bin/python bench/latency.py            # bench-cpu preset

1. 1 minute vs 60 minutes cached: two sources whose windows' latents are written straight into
   Redis (``LatentStore.put_chunk``, the pipeline's own writer: an hour is not decoded), then
   ``Heron.ask`` on each, interleaved. Heron answers from at most ``answer.max_windows`` windows,
   so the ratio should stay near 1 however long the stream is.
2. Cached vs naive on one generated 10-minute clip: Heron ingests it once, then answers from
   Redis; the naive path (OpenFlamingo-style code) decodes and encodes the whole video again for
   every question, in-process with the same model, decoder and sampling (no Ray, no Redis: the
   cheapest a naive path can be). Generation is Heron's own for both, so the ratio isolates the
   cached video state. The naive path is stateless, so its per-question time is measured on
   ``--naive-questions`` questions and counted 10 times.
3. Time to first token: the answer stage (Redis read, prompt, prefill with cross-attention)
   until the first token is chosen, vs a bare LM (same architecture and size, no Heron layers)
   prefilling a prompt of the same length.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.common import (
    Table,
    base_parser,
    interleaved,
    log,
    machine_line,
    make_clip,
    median,
    reproduce_line,
    set_threads,
    spread,
)

SCRIPT = "bench/latency.py"
QUESTIONS = [f"What happens in the video, part {i}?" for i in range(10)]


def write_synthetic_source(
    store, path: Path, duration_s: float, cfg, num_latents: int, dim: int, seed: int = 0, embedding_dim: int = 0
) -> str:
    """Cache ``duration_s`` seconds of windows for the file ``path`` (random latents, and random unit
    retrieval embeddings of ``embedding_dim`` when the model has retrieval, so questions pay for
    choosing windows by similarity); returns its id."""
    from heron.pipeline.sources import content_id, resolve_source
    from heron.types import MediaChunk

    source_id = content_id(resolve_source(path))
    store.clear_source(source_id)
    window_s = cfg.window_frames / cfg.fps
    n_windows = math.ceil(duration_s / window_s - 1e-9)
    rng = np.random.default_rng(seed)
    bank = rng.standard_normal((16, num_latents, dim), dtype=np.float32).astype(np.float16)  # reused: timing only
    vectors = rng.standard_normal((n_windows, embedding_dim), dtype=np.float32) if embedding_dim else None
    chunks = []
    for index in range(n_windows):
        t_start = index * window_s
        t_end = min(t_start + (cfg.window_frames - 1) / cfg.fps, duration_s)
        embedding = None if vectors is None else vectors[index] / np.linalg.norm(vectors[index])
        chunks.append(MediaChunk(source_id, index, t_start, t_end, bank[index % len(bank)], embedding))
        if len(chunks) == 256:
            store.put_chunks(chunks)
            chunks = []
    store.put_chunks(chunks)
    store.set_source_info(source_id, duration_s=duration_s, n_windows=n_windows, complete=True)
    return source_id


class FirstTokenClock:
    """Stamps the moment generation picks its first token (wraps the model's token chooser)."""

    def __init__(self, device):
        import heron.models.heron_model as heron_model

        self.module, self.device, self.first = heron_model, device, None
        self.original = heron_model.next_tokens_per_row

    def __enter__(self):
        import torch

        def stamped(*args, **kwargs):
            token = self.original(*args, **kwargs)
            if self.first is None:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                self.first = time.perf_counter()
            return token

        self.module.next_tokens_per_row = stamped
        return self

    def __exit__(self, *exc):
        self.module.next_tokens_per_row = self.original


def run(args) -> dict:
    import torch

    from heron.config import load_pipeline_config
    from heron.models import load_model
    from heron.models.building import build_lm, resolve_dtype
    from heron.pipeline.answer import AnswerStage
    from heron.pipeline.decode import VideoDecoder
    from heron.pipeline.encode import EncodeStage
    from heron.pipeline.prompts import evenly_spaced, question_prompt
    from heron.service import Heron
    from heron.state.server import ThrowawayRedis

    cfg = load_pipeline_config(args.config)
    threads = set_threads(args.threads)
    if args.device:
        cfg.device = args.device
    model = load_model(cfg.model, device=cfg.device, trainable="none")
    num_latents, dim = model.encoder.num_latents, model.encoder.dim
    retrieval = model.encoder.retrieval
    embedding_dim = 0 if retrieval is None else int(retrieval.embed_texts(["x"]).shape[-1])
    stage = EncodeStage(model)
    log(f"clips: two 2 s stand-ins for the synthetic sources, one {args.long_seconds:g} s clip for cached vs naive")
    short_file = make_clip(2, width=64, height=64, fps=4, seed=1)
    long_file = make_clip(2, width=64, height=64, fps=4, seed=2)
    clip = make_clip(args.long_seconds, width=args.width, height=args.height, fps=args.fps, gop_s=2.0)

    tables = []
    with ThrowawayRedis() as server, Heron(cfg, redis_url=server.url, progress=False) as heron:
        # --- 1. 1 vs 60 minutes cached -------------------------------------------------------------
        minutes = {"1 min cached": 60.0, f"{args.stream_minutes:g} min cached": args.stream_minutes * 60.0}
        files = dict(zip(minutes, (short_file, long_file)))
        source_ids = {
            name: write_synthetic_source(
                heron.latents, files[name], seconds, cfg.decode, num_latents, dim, embedding_dim=embedding_dim
            )
            for name, seconds in minutes.items()
        }
        log("warm-up ask (starts Ray and the answer actor)")
        heron.ask(str(short_file), QUESTIONS[0])
        answers: dict[str, list] = {name: [] for name in minutes}

        def asker(name):
            return lambda: answers[name].append(heron.ask(str(files[name]), QUESTIONS[1]))

        log(f"1 vs {args.stream_minutes:g} minutes: {args.rounds} interleaved rounds")

        def reader(name, *, cold):  # what the answer stage reads from Redis to choose its windows
            index = heron.latents.spans_and_embeddings if embedding_dim else heron.latents.window_spans

            def read():
                if cold:  # as the first question after the source changed: the whole index comes over
                    heron.latents.index_cache.clear()
                index(source_ids[name], 0.0, 1e12)

            return read

        times = interleaved(
            {
                **{name: asker(name) for name in minutes},
                **{f"cold {name}": reader(name, cold=True) for name in minutes},
                **{f"warm {name}": reader(name, cold=False) for name in minutes},
            },
            args.rounds,
        )
        table = Table(
            f"Question latency vs cached stream length ({cfg.model}, answers of up to "
            f"{cfg.answer.max_new_tokens} tokens from at most {cfg.answer.max_windows} windows)",
            [
                "variant",
                "windows cached",
                "windows used",
                "answer chars",
                "ask s (median)",
                "rounds min–max",
                "answer stage s",
                "index read s, cold / warm",
            ],
        )
        for name in minutes:
            info = heron.latents.source_info(source_ids[name])
            table.add(
                name,
                info.cached_windows,
                answers[name][-1].answer.windows_used,
                median([len(a.answer.text) for a in answers[name]]),
                median(times[name]),
                spread(times[name]),
                median([a.answer.seconds for a in answers[name]]),
                f"{median(times[f'cold {name}']):.4f} / {median(times[f'warm {name}']):.4f}",
            )
        long_name = list(minutes)[1]
        length_ratio = median(times[long_name]) / median(times["1 min cached"])
        table.notes += [
            "index read: the range's window times and retrieval embeddings from Redis, as the answer "
            "stage reads them; cold = first read after the source changed, warm = its cached copy "
            "checked against the source's version token (one small round trip); asks run warm",
            reproduce_line(SCRIPT, args, ["config", "device", "threads", "stream_minutes", "rounds"]),
        ]
        table.headline = (
            f"HEADLINE latency: {long_name} / 1 min cached = {length_ratio:.2f}  (target <= {args.length_target:g})"
        )
        print(table.render(), flush=True)
        tables.append(table)

        # --- 2. cached vs naive --------------------------------------------------------------------
        log(f"ingesting the {args.long_seconds:g} s clip once")
        clock = time.perf_counter()
        ingest = heron.ingest(str(clip))
        ingest_s = time.perf_counter() - clock
        heron.ask(str(clip), QUESTIONS[0])  # warm-up of this source's answer path

        def naive(question: str) -> str:
            windows = list(VideoDecoder(clip, cfg.decode))
            per_call = cfg.ingest.windows_per_call
            latents = [c.latents for i in range(0, len(windows), per_call) for c in stage(windows[i : i + per_call])]
            chosen = evenly_spaced(len(latents), cfg.answer.max_windows)
            media = torch.from_numpy(np.concatenate([latents[i] for i in chosen]).astype(np.float32))
            return model.generate(question_prompt(question), [media], max_new_tokens=cfg.answer.max_new_tokens)

        cached_s, naive_s = [], []
        every = max(1, len(QUESTIONS) // args.naive_questions)
        log(f"cached vs naive: {len(QUESTIONS)} cached questions, {args.naive_questions} naive, interleaved")
        for i, question in enumerate(QUESTIONS):
            if i % every == 0 and len(naive_s) < args.naive_questions:
                clock = time.perf_counter()
                naive(question)
                naive_s.append(time.perf_counter() - clock)
            clock = time.perf_counter()
            result = heron.ask(str(clip), question)
            cached_s.append(time.perf_counter() - clock)
            assert result.ingest.cached, "a cached question decoded or encoded something"
        naive_total = median(naive_s) * len(QUESTIONS)
        cached_total = sum(cached_s)
        speedup = naive_total / cached_total
        table = Table(
            f"Cached vs naive: {len(QUESTIONS)} questions on one {args.long_seconds / 60:.3g}-minute "
            f"{args.width}x{args.height} {args.fps} fps clip ({ingest.windows_encoded} windows)",
            [
                "variant",
                "questions measured",
                "s per question (median)",
                "rounds min–max",
                f"s for {len(QUESTIONS)} questions",
            ],
        )
        table.add(
            f"naive: decode + encode + answer, every question ({threads} torch thread)",
            len(naive_s),
            median(naive_s),
            spread(naive_s),
            naive_total,
        )
        table.add(
            "Heron: answer from Redis (video cached)", len(cached_s), median(cached_s), spread(cached_s), cached_total
        )
        table.add("Heron: one-time ingest (Ray, into Redis)", 1, ingest_s, "-", ingest_s)
        table.add("Heron: ingest once + answer every question", "-", "-", "-", ingest_s + cached_total)
        table.notes += [
            f"including Heron's one-time ingest: {naive_total / (ingest_s + cached_total):.2f}x "
            f"(about {len(QUESTIONS)}x when the ingest costs what one naive question does)",
            reproduce_line(
                SCRIPT,
                args,
                ["config", "device", "threads", "long_seconds", "width", "height", "fps", "naive_questions"],
            ),
        ]
        table.headline = (
            f"HEADLINE latency: naive / cached for {len(QUESTIONS)} questions = {speedup:.1f}x  "
            f"(target >= {args.naive_target:g}x)"
        )
        print(table.render(), flush=True)
        tables.append(table)

        # --- 3. time to first token vs a bare LM's prefill --------------------------------------------
        answer_stage = AnswerStage(model, heron.latents, heron.dialogue, cfg.answer)
        source_id = content_id_of(short_file)
        device = model.device
        with torch.device(device):  # random init straight on the GPU: a 1B LM initialises in seconds there
            bare = build_lm(model.config.lm).to(dtype=resolve_dtype(model.config.dtype, device)).eval()
        prompt_len = len(model.tokenizer(question_prompt(QUESTIONS[2]))["input_ids"])
        bare_ids = torch.randint(0, bare.config.vocab_size, (1, prompt_len), device=device)
        firsts: list[float] = []

        def heron_first_token() -> None:
            with FirstTokenClock(device) as clock_first:
                start = time.perf_counter()
                answer_stage(QUESTIONS[2], source_id)
            firsts.append(clock_first.first - start)

        @torch.no_grad()
        def bare_prefill() -> None:
            bare(input_ids=bare_ids, use_cache=True)
            if device.type == "cuda":
                torch.cuda.synchronize()

        for _ in range(2):
            heron_first_token(), bare_prefill()  # warm-up
        firsts.clear()
        times = interleaved({"answer stage": heron_first_token, "bare LM prefill": bare_prefill}, 3 * args.rounds)
        ttft, prefill = median(firsts), median(times["bare LM prefill"])
        table = Table(
            f"Time to first token, 1-minute cached source ({prompt_len}-token prompt, "
            f"{answer_stage_windows(heron, source_id, cfg)} windows x {num_latents} latents, in-process, "
            f"{device.type}, {threads} torch thread)",
            ["variant", "ms (median)", "rounds min–max (ms)"],
        )
        table.add(
            "Heron answer stage: Redis read + prompt + prefill → first token",
            ttft * 1e3,
            spread([f * 1e3 for f in firsts]),
        )
        table.add(
            f"bare {model.config.lm.architecture or 'LM'} prefill, same length, no media",
            prefill * 1e3,
            spread([t * 1e3 for t in times["bare LM prefill"]]),
        )
        table.notes += [machine_line(), reproduce_line(SCRIPT, args, ["config", "device", "threads", "rounds"])]
        table.headline = (
            f"HEADLINE latency: time to first token / bare LM prefill = {ttft / prefill:.2f}  "
            f"(GPU target <= {args.ttft_target:g})"
        )
        print(table.render(), flush=True)
        tables.append(table)
    return {
        "length_ratio": length_ratio,
        "naive_speedup": speedup,
        "ttft_ratio": ttft / prefill,
        "ingest_s": ingest_s,
        "cached_s": cached_s,
        "naive_s": naive_s,
        "ttft_s": ttft,
        "prefill_s": prefill,
    }


def content_id_of(path: Path) -> str:
    from heron.pipeline.sources import content_id, resolve_source

    return content_id(resolve_source(path))


def answer_stage_windows(heron, source_id: str, cfg) -> int:
    info = heron.latents.source_info(source_id)
    return min(info.cached_windows, cfg.answer.max_windows)


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--stream-minutes", type=float, default=60.0, help="length of the long cached stream (min)")
    p.add_argument("--long-seconds", type=float, default=600.0, help="the cached-vs-naive clip's length (s)")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=180)
    p.add_argument("--fps", type=int, default=15, help="the clip's own frame rate")
    p.add_argument("--naive-questions", type=int, default=2, help="naive questions measured (each one re-ingests)")
    p.add_argument("--length-target", type=float, default=1.2)
    p.add_argument("--naive-target", type=float, default=10.0)
    p.add_argument("--ttft-target", type=float, default=2.0)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.quick:
        args.stream_minutes, args.long_seconds, args.naive_questions = 5.0, 32.0, 1
        args.width, args.height = 96, 64
    args.rounds = args.rounds or (2 if args.quick else 7)
    return run(args)


if __name__ == "__main__":
    main()
