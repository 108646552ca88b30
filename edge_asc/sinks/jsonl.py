"""One JSON object per update, one per line: what scripts and the journal read."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, TextIO

from edge_asc.sinks.base import Sink

if TYPE_CHECKING:
    from edge_asc.listen import Update


class JsonLinesSink(Sink):
    """Write :meth:`Update.to_dict` as a line to ``stream`` (stdout by default), flushed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def update(self, update: Update) -> None:
        """Write one line and flush it, so a reader sees it at once."""
        stream = self.stream or sys.stdout
        stream.write(json.dumps(update.to_dict()) + "\n")
        stream.flush()
