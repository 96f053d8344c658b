"""``heron convert openflamingo CHECKPOINT --out DIR``: an OpenFlamingo checkpoint → a Heron model directory.

    heron convert openflamingo openflamingo/OpenFlamingo-4B-vitl-rpj3b --out models/of-4b
    heron convert openflamingo path/to/checkpoint.pt --vision openai/clip-vit-large-patch14 \\
        --lm togethercomputer/RedPajama-INCITE-Base-3B-v1 --cross-attn-every 2 --out models/of-4b

The pickle checkpoint is read once (``torch.load(weights_only=True)``); the directory holds
safetensors only and loads with ``heron.load_model(DIR)``. See docs/openflamingo.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from heron.errors import HeronError


def build_parser(prog: str = "heron convert") -> argparse.ArgumentParser:
    """Arguments of ``heron convert``; ``prog`` names the command in usage messages."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Convert other projects' checkpoints to Heron model directories."
    )
    formats = parser.add_subparsers(dest="format", required=True)
    of = formats.add_parser(
        "openflamingo",
        help="an OpenFlamingo checkpoint.pt (docs/openflamingo.md)",
        description="Convert an OpenFlamingo checkpoint to a Heron model directory.",
    )
    of.add_argument(
        "checkpoint", help="a released model's name (openflamingo/OpenFlamingo-4B-vitl-rpj3b) or a checkpoint.pt"
    )
    of.add_argument("--out", required=True, help="the Heron model directory to write")
    of.add_argument("--vision", help="HF CLIP id/dir, or an open_clip dir (converted); default: the variant's")
    of.add_argument("--lm", help="HF causal LM id/dir; default: the variant's")
    of.add_argument("--tokenizer", help="tokenizer id/dir; default: the LM's")
    of.add_argument(
        "--cross-attn-every",
        type=int,
        dest="cross_attn_every_n_layers",
        metavar="N",
        help="OpenFlamingo's cross_attn_every_n_layers; default: the variant's, else read off the checkpoint",
    )
    of.add_argument(
        "--trust-remote-code",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the LM's modelling code from its hub repo (MPT); default: the variant's",
    )
    of.add_argument(
        "--decoder-layers-attr", help="dotted path of the LM's decoder layer list, for LMs Heron does not know"
    )
    of.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def convert_main(argv: list[str] | None = None) -> int:
    """Run ``heron convert`` with ``argv`` = the words after ``convert`` (``openflamingo CHECKPOINT ...``).

    Returns the exit status: 0, or a HeronError's exit code after a one-line message on stderr.
    """
    args = build_parser().parse_args(argv)
    from heron.models.openflamingo import convert_openflamingo

    started = time.perf_counter()
    try:
        out = convert_openflamingo(
            args.checkpoint,
            args.out,
            vision=args.vision,
            lm=args.lm,
            tokenizer=args.tokenizer,
            cross_attn_every_n_layers=args.cross_attn_every_n_layers,
            trust_remote_code=args.trust_remote_code,
            decoder_layers_attr=args.decoder_layers_attr,
        )
    except HeronError as error:
        if args.debug:
            raise
        print(f"heron: error: {error}", file=sys.stderr)
        return error.exit_code
    # The one-line summary is the command's output, so it is printed, not logged.
    print(
        f"wrote {out} from {args.checkpoint} in {time.perf_counter() - started:.1f} s; "
        f"load it with heron.load_model({str(out)!r})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(convert_main())
