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
        app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
