"""The one root of every error a user can act on.

Each part of edge-asc raises its own subclass (a bad audio file, a bad bundle, a missing
microphone, ...), always with a message that is one line. The command line catches
:class:`EdgeAscError` in one place and prints that line; anything else is a bug and keeps its
traceback. Warnings about input that is still used (an :class:`EdgeAscWarning`) are printed
the same way, one line each, by :func:`one_line_warnings`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class EdgeAscError(Exception):
    """A problem with what the user gave or asked for; ``str()`` is one readable line."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(text).split())


class EdgeAscWarning(UserWarning):
    """Something the user should know about input that is still used; ``str()`` is one line."""


@contextmanager
def one_line_warnings(prog: str = "edge-asc") -> Iterator[None]:
    """Print each :class:`EdgeAscWarning` once, as ``<prog>: warning: <line>`` on stderr.

    Python's default shows the warning with its source location on a second line, and once
    per place it was raised; a user wants one line per distinct message.
    """
    previous = warnings.showwarning
    seen: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not issubclass(category, EdgeAscWarning):
            previous(message, category, filename, lineno, file, line)
            return
        text = one_line(message)
        if text not in seen:
            seen.add(text)
            print(f"{prog}: warning: {text}", file=file or sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", EdgeAscWarning)
        warnings.showwarning = show
        yield
