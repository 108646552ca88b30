"""The ``edge-asc`` command line: one typer app, one thin command per task.

Commands parse arguments, call the library and turn its user-facing errors
(:class:`~edge_asc.errors.EdgeAscError`) into one line on stderr with exit code 2, in one
place (:func:`~edge_asc.cli.common.user_errors`). The commands live in
:mod:`edge_asc.cli.runtime` (classify, listen, devices, bench) and
:mod:`edge_asc.cli.offline` (features, train, evaluate, export, info).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from edge_asc import __version__
from edge_asc.cli import history, listen, offline, runtime  # noqa: F401  (registers the commands)
from edge_asc.cli.common import EXIT_USAGE, UserError, app, default_model, fail
from edge_asc.errors import one_line

__all__ = ["EXIT_USAGE", "UserError", "app", "default_model", "fail", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edge-asc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Acoustic scene classification at the edge."""


def main() -> None:
    """Entry point of the ``edge-asc`` console script."""
    # One BLAS thread: the front-end's small matrix products run several times faster than
    # with OpenBLAS spreading them over cores, and the interpreter has its own --threads.
    from threadpoolctl import threadpool_limits

    from edge_asc.errors import one_line_warnings
    from edge_asc.signals import graceful_signals

    # SIGTERM / SIGHUP raise an exception, so atomic_output removes its temporary file and
    # listen ends like on Ctrl-C.
    with graceful_signals(), one_line_warnings(), threadpool_limits(limits=1, user_api="blas"):
        sys.exit(_run_app())


def _run_app() -> int:
    """Run the app; a wrong option or value is one line on stderr (exit 2), not a usage box.

    Click's exceptions (vendored inside typer from 0.2x, a dependency before) are recognised
    by what they offer, ``format_message`` and ``exit_code``, so either typer works.
    """
    try:
        result = app(standalone_mode=False)
    except typer.Abort:
        return 130
    except Exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 0  # `edge-asc` alone: the help was shown
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"edge-asc: error: {one_line(exc.format_message())}{hint}", err=True)
        return EXIT_USAGE if exc.exit_code == 2 else int(exc.exit_code)
    return result if isinstance(result, int) else 0
