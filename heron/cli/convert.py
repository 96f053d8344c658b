"""``heron convert openflamingo CHECKPOINT --out DIR``: other projects' checkpoints → Heron model directories."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output
from heron.text import seconds

app = typer.Typer(help="convert checkpoints: `heron convert openflamingo --help`", no_args_is_help=True)


@app.command("openflamingo")
def openflamingo(
    ctx: typer.Context,
    checkpoint: Annotated[
        str, typer.Argument(help="a released model's name (openflamingo/OpenFlamingo-4B-vitl-rpj3b) or a checkpoint.pt")
    ],
    out_dir: Annotated[str, typer.Option("--out", help="the Heron model directory to write")],
    vision: Annotated[
        str | None, typer.Option("--vision", help="HF CLIP id/dir, or an open_clip dir [default: the variant's]")
    ] = None,
    lm: Annotated[str | None, typer.Option("--lm", help="HF causal LM id/dir [default: the variant's]")] = None,
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="tokenizer id/dir [default: the LM's]")] = None,
    cross_attn_every: Annotated[
        int | None,
        typer.Option(
            "--cross-attn-every",
            metavar="N",
            help="OpenFlamingo's cross_attn_every_n_layers [default: the variant's, else read off the checkpoint]",
        ),
    ] = None,
    trust_remote_code: Annotated[
        bool | None,
        typer.Option(
            "--trust-remote-code/--no-trust-remote-code",
            show_default=False,
            help="run the LM's modelling code from its hub repo (MPT) [default: the variant's]",
        ),
    ] = None,
    decoder_layers_attr: Annotated[
        str | None,
        typer.Option(
            "--decoder-layers-attr", help="dotted path of the LM's decoder layers, for LMs Heron does not know"
        ),
    ] = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """Convert an OpenFlamingo checkpoint to a Heron model directory (safetensors; docs/openflamingo.md)."""
    from heron.models.openflamingo import convert_openflamingo

    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    started = time.perf_counter()
    written = convert_openflamingo(
        checkpoint,
        out_dir,
        vision=vision,
        lm=lm,
        tokenizer=tokenizer,
        cross_attn_every_n_layers=cross_attn_every,
        trust_remote_code=trust_remote_code,
        decoder_layers_attr=decoder_layers_attr,
    )
    took = time.perf_counter() - started
    if out.json:
        out.emit_json({"model_dir": str(written), "checkpoint": checkpoint, "seconds": round(took, 2)})
    else:
        out.print(
            f"wrote {written} from {checkpoint} in {seconds(took)}; load it with heron.load_model({str(written)!r})"
        )
