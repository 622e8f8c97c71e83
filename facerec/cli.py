"""The ``facerec`` command line: wires the command modules and turns domain errors into one line.

Each command lives in ``facerec/commands/<name>.py`` and only parses options and calls a library
function. Set ``FACEREC_DEBUG=1`` to see the traceback behind an error message.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from facerec.errors import FacerecError

COMMAND_MODULES = (
    "ingest",
    "landmarks",
    "features",
    "canonical",
    "build",
    "inspect_store",
    "verify",
    "train",
    "evaluate",
    "eval_lfw",
    "eval_pairs",
    "autoencoder",
    "embed",
    "demo",
)

app = typer.Typer(
    name="facerec",
    help="Face recognition, data pipeline first: ingest -> landmarks -> features -> canonical -> train -> evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_commands() -> None:
    """Import and register every command module; one that fails to import fails the CLI, loudly."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"facerec.commands.{name}").register(app)


def configure_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(rich_tracebacks=False, show_path=False)],
    )
    from facerec.console import configure_loggers

    configure_loggers(verbose)


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", help="Show third-party output too: TF Lite/absl lines, "
                                 "Spark/log4j warnings and Java traces, py4j; accepted anywhere on the line."),
) -> None:
    """Face recognition, data pipeline first: ingest -> landmarks -> features -> canonical -> train -> evaluate."""


_register_commands()


def main() -> None:
    """Console entry point."""
    verbose = os.environ.get("FACEREC_VERBOSE") == "1" or "--verbose" in sys.argv[1:]
    if "--verbose" in sys.argv[1:]:   # accepted after the command name too: facerec ingest ... --verbose
        sys.argv = [sys.argv[0]] + [a for a in sys.argv[1:] if a != "--verbose"]
        os.environ["FACEREC_VERBOSE"] = "1"   # Spark workers and child processes see it too
    configure_logging(verbose=verbose)
    from facerec.console import quiet_console

    quiet_console(verbose)
    try:
        app()
    except FacerecError as exc:
        if os.environ.get("FACEREC_DEBUG") == "1":
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
