"""The `edgedit` command line: parse options, make one library call, render.

Conventions: exit 0 ok, 1 the work failed (a check), 2 bad usage or bad input; errors are one
line on stderr, with a traceback only under `edgedit --debug`. Heavy dependencies are imported
inside the commands that need them, so `edgedit --help` and the device-side commands start fast
without torch. One module per group of commands; `common` holds what they share.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgedit import __version__
from edgedit.cli.common import app, setup_logging, state
from edgedit.contract.errors import EdgeditError

# isort: off
# Importing a module registers its commands; --help lists them in this order.
from edgedit.cli import models, deploy, bench, serve, train, evaluation, design  # noqa: F401
# isort: on


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgedit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Read checkpoints and ONNX files whose weights fail their content hash (to recover a damaged file).",
        ),
    ] = False,
    fit: Annotated[
        Path | None,
        typer.Option(
            "--fit",
            help="A device latency fit from `edgedit models --calibrate` for every estimate (default: the "
            "shipped one).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    if fit is not None:
        from edgedit.contract.fileio import regular_file

        try:
            regular_file(fit, "latency fit")
        except EdgeditError as err:
            typer.echo(f"edgedit: error: --fit {err}", err=True)
            raise typer.Exit(err.exit_code) from None
    state["debug"], state["verify"], state["fit"] = debug, not no_verify, fit
    setup_logging()


def main() -> None:
    app(prog_name="edgedit")


if __name__ == "__main__":
    sys.exit(main())
