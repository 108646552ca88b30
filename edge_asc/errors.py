"""The one root of every error a user can act on.

Each part of edge-asc raises its own subclass (a bad audio file, a bad bundle, a missing
microphone, ...), always with a message that is one line. The command line catches
:class:`EdgeAscError` in one place and prints that line; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class EdgeAscError(Exception):
    """A problem with what the user gave or asked for; ``str()`` is one readable line."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(text).split())
