"""The ``heron`` command: one Typer app, one error handler.

Every mistake a user can make is a ``HeronError`` (or a usage error from the parser): one line
on stderr naming the problem and what to do, exit status 2 — or, under ``--json``, the error as
JSON on stdout. ``--debug`` shows the traceback instead. Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from heron import __version__
from heron.cli import ask, batch, cache, convert, data, live, serve, train
from heron.cli.output import Output
from heron.errors import HeronError

app = typer.Typer(
    name="heron",
    help="Heron watches video and answers questions about it.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"heron {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print Heron's version and exit")
    ] = False,
) -> None:
    """Heron watches video and answers questions about it (README.md; docs/)."""


app.command("ask")(ask.ask)
app.command("serve")(serve.serve)
app.command("watch")(live.watch)
app.command("batch")(batch.batch)
app.add_typer(batch.jobs_app, name="jobs")
app.add_typer(live.alerts_app, name="alerts")
app.add_typer(live.streams_app, name="streams")
app.add_typer(cache.app, name="cache")
app.add_typer(data.app, name="data")
app.add_typer(convert.app, name="convert")
app.command("train")(train.train)
app.command("eval")(train.evaluate)
app.command("pretrain")(train.pretrain)
app.command("demo-model")(train.demo_model)


def main(argv: list[str] | None = None) -> int:
    """Run ``heron`` with ``argv`` (default: the process's); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Output()
    out.json = "--json" in argv  # so that even a usage error comes back as JSON
    command = typer.main.get_command(app)
    try:
        status = command.main(args=argv, prog_name="heron", standalone_mode=False, obj=out)
        return status if isinstance(status, int) else 0  # a command's typer.Exit(n) comes back as n
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        out.clear_status()
        print("heron: interrupted", file=sys.stderr)
        return 130
    except typer.TyperException as usage:  # the parser's: unknown option, missing argument, bad value
        if out.json:
            out.emit_json({"error": {"type": "UsageError", "message": usage.format_message()}})
        else:
            usage.show()
        return usage.exit_code
    except HeronError as error:
        if out.debug:
            raise
        out.error(error)
        return error.exit_code
    finally:
        out.clear_status()
