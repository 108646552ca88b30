"""Where updates go: the outputs of ``listen``, each a :class:`Sink`.

The listen loop hands every update to a list of sinks and knows nothing else about them, so
a new output (a network publisher, an event store, a web page) is one new sink, not a change
to the loop.
"""

from edge_asc.sinks.base import Sink
from edge_asc.sinks.jsonl import JsonLinesSink
from edge_asc.sinks.live_view import LiveViewSink, render

__all__ = ["JsonLinesSink", "LiveViewSink", "Sink", "render"]
