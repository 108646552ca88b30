"""The event history: a SQLite store of ended events, their audio clips, and retention."""

from edge_asc.history.clips import AudioRing, ClipError, Retention, prune
from edge_asc.history.store import EventStore, StoredEvent, StoreError

__all__ = [
    "AudioRing",
    "ClipError",
    "EventStore",
    "Retention",
    "StoreError",
    "StoredEvent",
    "prune",
]
