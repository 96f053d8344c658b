"""Generation: media keys/values cached once per request (Heron) vs recomputed at every step.

    .venv/bin/python bench/generate.py           # bench-cpu preset

Both variants run the model's own ``generate_ids`` with the same weights, prompt and media
(``answer.max_windows`` windows of latents, as the answer stage gives it). The naive variant swaps
in a ``MediaRequest`` whose ``keys_values`` recomputes every cross-attention layer's media
keys/values at every call, which is what OpenFlamingo and Idefics do at each decoding step. Both
must produce the same tokens; the bench checks that before timing.

Answers run to exactly N tokens (stop tokens are switched off for the bench), N in --lengths.
ms/token = the whole generate_ids call (prefill included) / N; the step column is the marginal
cost of one more token, (t(N_max) - t(N_min)) / (N_max - N_min).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Table, base_parser, interleaved, log, machine_line, median, reproduce_line, set_threads, spread

SCRIPT = "bench/generate.py"


def naive_request_class():
    from heron.models.media_state import MediaRequest

    @dataclass
    class RecomputingMediaRequest(MediaRequest):
        """keys_values recomputed on every call: every layer, every decoding step."""

        def keys_values(self, layer, attention):
            return attention.media_keys_values(self.media)

    return RecomputingMediaRequest


@contextmanager
def recomputing_media(model):
    """Inside the block, ``model`` builds RecomputingMediaRequests instead of caching ones."""
    cls = naive_request_class()

    def request(media, media_mask):
        return cls(media=media.to(model.dtype), media_mask=media_mask, mode=model.config.xattn.media_attention)

    model._request = request  # instance attribute shadows the method; removed on exit
    try:
        yield
    finally:
        del model._request


@contextmanager
def no_stop_tokens(model):
    """Generate exactly max_new_tokens: no EOS / end-of-chunk stop (random weights stop anywhere)."""
    model._stop_ids = lambda stop_at_end_of_chunk: []
    try:
        yield
    finally:
        del model._stop_ids


def run(args) -> dict:
    import torch

    from heron.config import load_pipeline_config
    from heron.models import load_model
    from heron.pipeline.prompts import question_prompt

    cfg = load_pipeline_config(args.config)
    threads = set_threads(args.threads)
    model = load_model(cfg.model, device=args.device or cfg.device, trainable="none")
    device = model.device
    windows = cfg.answer.max_windows
    generator = torch.Generator().manual_seed(0)
    media = torch.randn(windows * model.encoder.num_latents, model.encoder.dim, generator=generator)  # [k*R, d]
    batch = model.prepare([question_prompt("What happens in the video?")], [[media]], max_new_tokens=max(args.lengths))
    lengths = sorted(args.lengths)

    def cached(n: int):
        out = model.generate_ids(batch, max_new_tokens=n)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    def naive(n: int):
        with recomputing_media(model):
            return cached(n)

    with no_stop_tokens(model):
        # Same tokens, or the comparison is void (and the naive variant is wrong).
        reference, recomputed = cached(lengths[0]), naive(lengths[0])
        if not torch.equal(reference, recomputed):
            raise AssertionError(f"naive and cached generation differ: {reference.tolist()} vs {recomputed.tolist()}")
        if reference.shape[1] != lengths[0]:
            raise AssertionError(f"generated {reference.shape[1]} tokens, expected {lengths[0]}")
        variants = {}
        for n in lengths:
            variants[f"Heron (media K/V once), N={n}"] = lambda n=n: cached(n)
            variants[f"naive (media K/V every step), N={n}"] = lambda n=n: naive(n)
        log(f"generation: {len(variants)} variants x {args.rounds} interleaved rounds")
        times = interleaved(variants, args.rounds)

    table = Table(
        f"Generation ({cfg.model}, {model.config.lm.architecture} LM, {len(model.xattn_layer_indices)} "
        f"cross-attention layers, media = {windows} windows x {model.encoder.num_latents} latents x "
        f"{model.encoder.dim}, prompt {batch.input_ids.shape[1]} tokens, {device.type}, {threads} torch thread)",
        ["variant", "N tokens", "ms total (median)", "rounds min–max (ms)", "ms/token", "ms/step"],
    )
    per_token, per_step = {}, {}
    for kind in ("Heron", "naive"):
        names = [name for name in times if name.startswith(kind)]
        first, last = median(times[names[0]]), median(times[names[-1]])
        step = (last - first) / (lengths[-1] - lengths[0]) if len(lengths) > 1 else float("nan")
        for name, n in zip(names, lengths):
            t = median(times[name])
            per_token[(kind, n)] = t / n
            per_step[kind] = step
            table.add(name, n, t * 1e3, spread([x * 1e3 for x in times[name]]), t / n * 1e3, step * 1e3)
    longest = lengths[-1]
    table.notes += [
        "ms/token ratio naive / Heron: "
        + ", ".join(f"N={n}: {per_token[('naive', n)] / per_token[('Heron', n)]:.2f}x" for n in lengths)
        + f"; per extra step: {per_step['naive'] / per_step['Heron']:.2f}x",
        machine_line(),
        reproduce_line(SCRIPT, args, ["config", "device", "threads", "rounds"])
        + " --lengths "
        + " ".join(map(str, lengths)),
    ]
    ratio = per_token[("naive", longest)] / per_token[("Heron", longest)]
    table.headline = f"HEADLINE generate: naive / Heron ms per token at N={longest} = {ratio:.2f}x"
    print(table.render(), flush=True)
    return {"ratio": ratio, "per_token": {f"{k}@{n}": v for (k, n), v in per_token.items()}, "per_step": per_step}


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[16, 128], help="answer lengths N (tokens)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.quick:
        args.lengths = [2, 8]
    args.rounds = args.rounds or (1 if args.quick else 5)
    return run(args)


if __name__ == "__main__":
    main()
