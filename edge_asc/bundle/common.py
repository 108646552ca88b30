"""What every part of the bundle package shares: its error, names, and one-line messages.

A bundle comes from outside (a download, a USB stick, another team), so every message about
it quotes untrusted text; the helpers here keep such quotes short and on one line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from edge_asc.errors import EdgeAscError

BUNDLE_SUFFIX = ".easc"
"""Conventional file suffix of a bundle."""

MANIFEST_NAME = "manifest.json"
"""Name of the manifest inside the zip archive."""

SIGNATURE_NAME = "signature.json"
"""Name of the optional Ed25519 signature of the manifest inside the zip archive."""


CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters: never allowed in a label or a member name."""


class SchemaViolation(Exception):
    """A manifest field that breaks the schema; the manifest check says which bundle."""


def bad(message: str) -> NoReturn:
    """Raise :class:`SchemaViolation` with ``message``."""
    raise SchemaViolation(message)


def is_int(value: Any) -> bool:
    """Whether ``value`` is a JSON integer (``bool`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite JSON number (``bool`` is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class BundleError(EdgeAscError):
    """A bundle that cannot be written or loaded; ``str()`` is one line naming the file."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(text: str) -> str:
    """``text`` with carriage returns and newlines escaped, so it stays on one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of an untrusted value, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def names(items: Sequence[str], limit: int = 5) -> str:
    """A short, quoted list of names: at most ``limit`` shown, then how many more."""
    shown = ", ".join(short(name, 40) for name in items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
