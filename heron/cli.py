"""The ``heron`` command.

    heron ask SOURCE QUESTION [--session S] [--from A] [--to B] [--json]
    heron cache ls | heron cache clear [SOURCE]
    heron data synth --out DIR --n N --seed S
    heron convert openflamingo CHECKPOINT --out DIR
    heron train CONFIG | heron eval MODEL_DIR DATA_DIR [--json] | heron pretrain CONFIG

Errors a user can cause print one line and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

from heron.errors import HeronError

log = logging.getLogger("heron")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("HERON_CONFIG", "tiny"),
        help="preset name or YAML file with a pipeline: section (default: tiny, or $HERON_CONFIG)",
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("HERON_MODEL"),
        help="model preset, YAML or saved directory; overrides the config's (or $HERON_MODEL)",
    )
    parser.add_argument(
        "--redis-url", default=None, help="external Redis (default: $HERON_REDIS_URL, else an embedded server)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")


def _pipeline_config(args):
    from heron.config import load_pipeline_config

    cfg = load_pipeline_config(args.config)
    if args.model:
        cfg.model = args.model
    return cfg


def cmd_ask(args) -> int:
    from heron.pipeline.answer import check_question
    from heron.pipeline.sources import resolve_source
    from heron.pipeline.windows import check_time_range
    from heron.service import Heron

    check_question(args.question)  # cheap checks first: no Redis, no Ray for a typo
    check_time_range(args.start, args.end)
    resolve_source(args.source)
    cfg = _pipeline_config(args)
    with Heron(
        cfg, redis_url=args.redis_url, ray_address=args.ray_address, progress=False if args.json else None
    ) as heron:
        result = heron.ask(args.source, args.question, start=args.start, end=args.end, session_id=args.session)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    spans = ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in _merge(result.answer.spans, gap=1.5 / cfg.decode.fps))
    print(result.answer.text or "(no answer)")
    print(f"  used: {spans}   session: {result.answer.session_id}")
    print(f"  {result.summary()}", file=sys.stderr)
    return 0


def _merge(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """Adjacent windows shown as one span: a window ends one sampled frame before the next starts."""
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def cmd_cache(args) -> int:
    from heron.pipeline.fingerprint import encoder_settings
    from heron.pipeline.sources import content_id
    from heron.state import LatentStore, RedisConnection, ensure_redis

    cfg = _pipeline_config(args)
    store = LatentStore(RedisConnection(ensure_redis(args.redis_url)), encoder_settings(cfg))
    if args.action == "ls":
        infos = [store.source_info(s) for s in store.list_sources()]
        infos = [i for i in infos if i is not None]
        if args.json:
            print(json.dumps([i.__dict__ for i in infos], indent=2, default=str))
        for info in infos if not args.json else []:
            length = f"{info.duration_s:.1f} s" if info.duration_s else "?"
            state = "complete" if info.complete else "partial"
            print(f"{info.source_id}  {info.cached_windows:5d} windows  {length:>9}  {state:8}  {info.name or '?'}")
        if not infos and not args.json:
            print("cache is empty", file=sys.stderr)
        return 0
    targets = [args.source] if args.source else store.list_sources()
    deleted = 0
    for target in targets:
        source_id = target if target in store.list_sources() else content_id(target)
        deleted += store.clear_source(source_id)
    print(f"cleared {len(targets)} source(s), {deleted} keys", file=sys.stderr)
    return 0


def cmd_data(args, rest: list[str]) -> int:
    from heron.data.synthetic.cli import main as synth_main

    return synth_main(rest) or 0


def cmd_convert(args, rest: list[str]) -> int:
    from heron.models.convert_cli import convert_main

    return convert_main([args.what, *rest]) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heron", description="Ask questions about video.")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question about a video file or URL")
    ask.add_argument("source", help="video file or http(s) URL")
    ask.add_argument("question")
    ask.add_argument("--session", help="continue the dialogue of this session id")
    ask.add_argument("--from", dest="start", type=float, help="start of the time range, seconds")
    ask.add_argument("--to", dest="end", type=float, help="end of the time range, seconds")
    ask.add_argument("--json", action="store_true", help="print the result as JSON")
    ask.add_argument("--ray-address", default=None, help="join this Ray cluster (default: $RAY_ADDRESS, else local)")
    _common(ask)
    ask.set_defaults(run=cmd_ask)

    cache = sub.add_parser("cache", help="list or clear cached window latents")
    cache.add_argument("action", choices=["ls", "clear"])
    cache.add_argument("source", nargs="?", help="clear only this source (file, URL or content id)")
    cache.add_argument("--json", action="store_true")
    _common(cache)
    cache.set_defaults(run=cmd_cache)

    data = sub.add_parser("data", help="datasets: `heron data synth --help`", add_help=False)
    data.add_argument("what", choices=["synth"])
    data.add_argument("--debug", action="store_true")
    data.set_defaults(run=cmd_data)

    convert = sub.add_parser("convert", help="convert checkpoints: `heron convert openflamingo --help`", add_help=False)
    convert.add_argument("what", choices=["openflamingo"])
    convert.add_argument("--debug", action="store_true")
    convert.set_defaults(run=cmd_convert)

    for name, text in (
        ("train", "train a model: the stages of a config's train: section"),
        ("eval", "accuracy per question category on a generated set"),
        ("pretrain", "make the demo's data and pretrain its tiny backbones"),
    ):
        sub.add_parser(name, help=f"{text} (`heron {name} --help`)", add_help=False)
    return parser


# Training commands parse their own arguments (heron/train/cli.py): `heron train ...` hands them the rest.
_TRAINING = {"train": "train_main", "eval": "eval_main", "pretrain": "pretrain_main"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _TRAINING:
        from heron.train import cli as train_cli

        return getattr(train_cli, _TRAINING[argv[0]])(argv[1:])
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    passes_rest = args.command in ("data", "convert")
    if rest and not passes_rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.debug:
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    run: Callable = args.run
    try:
        return run(args, rest) if passes_rest else run(args)
    except HeronError as error:
        if args.debug:
            raise
        print(f"heron: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("heron: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
