"""One JSON object per update, and one per event start or end, each on a line.

What scripts and the journal read. Event objects have ``"event": "start"|"end"`` and come
right after the update in which they happened.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from edge_asc.sinks.base import Sink

if TYPE_CHECKING:
    from edge_asc.events import EventChange
    from edge_asc.listen import Update


class JsonLinesSink(Sink):
    """Write :meth:`Update.to_dict` as a line to ``stream`` (stdout by default), flushed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()  # several sources' workers write to one stream

    def update(self, update: Update) -> None:
        """Write the update's line (and its events' lines) and flush, so a reader sees it."""
        lines = [update.to_dict()] + [
            {**c.to_dict(), "source": update.source} for c in update.events
        ]
        self._write(lines)

    def events(self, changes: list[EventChange], source: str) -> None:
        """Write the lines of events that ended with the stream."""
        self._write([{**change.to_dict(), "source": source} for change in changes])

    def _write(self, objects: list[dict]) -> None:
        stream = self.stream or sys.stdout
        with self._lock:
            for data in objects:
                stream.write(json.dumps(data) + "\n")
            stream.flush()
