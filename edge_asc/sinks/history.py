"""``listen --events PATH.db``: every ended event into the store, with its clip.

The sink commits each ended event to the database on the listener's thread, at once (a kill
loses nothing that had ended). Clips need the post-roll, which arrives after the event ended,
so the sink keeps one :class:`~edge_asc.history.clips.AudioRing` per source (fed by the
listener's ``audio_tap``), and when a source's audio has passed an event's end plus the
post-roll, it hands the span to a writer thread that encodes the FLAC, records it in the
database and applies retention; the listener never waits for an encoder or the disk.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_asc.decision import QUIET, UNKNOWN
from edge_asc.history.clips import AudioRing, ClipError, Retention, clip_name, prune, write_clip
from edge_asc.history.store import EventStore
from edge_asc.sinks.base import Sink

if TYPE_CHECKING:
    from edge_asc.events import Event, EventChange
    from edge_asc.listen import Update


PRUNE_EVERY_S = 600.0
"""Seconds between two retention passes when the clip folder is under its limit."""


@dataclass(frozen=True)
class ClipSettings:
    """How clips are cut and kept.

    Attributes
    ----------
    folder : Path or None
        Where clips go; ``None``: no clips at all.
    pre_roll, post_roll : float
        Seconds of audio before the start and after the end of the event.
    max_clip : float
        Seconds of audio held per source (the longest clip; a longer event's clip is its end).
    no_clips_for : tuple of str
        Labels whose audio is never written (privacy).
    retention : Retention
        Age and disk limits.
    """

    folder: Path | None = None
    pre_roll: float = 2.0
    post_roll: float = 2.0
    max_clip: float = 30.0
    no_clips_for: tuple[str, ...] = ()
    retention: Retention = field(default_factory=Retention)


def default_clip_folder(db: Path) -> Path:
    """The clip folder beside ``db``: ``events.db`` -> ``events-clips/``."""
    return db.with_name(db.stem + "-clips")


class HistorySink(Sink):
    """Write ended events (and per-minute summaries) to ``db`` and clips to a folder.

    Parameters
    ----------
    db : Path
        The SQLite file.
    model : str
        The model's name, stored with each event.
    sample_rate : int
        The tapped audio's rate (the model's).
    clips : ClipSettings
        Clip folder, rolls and retention.
    max_not_heard_s : float
        Seconds an event lasts past its end before it is reported (the ring holds them too).
    """

    def __init__(
        self,
        db: Path,
        model: str,
        sample_rate: int,
        clips: ClipSettings | None = None,
        max_not_heard_s: float = 5.0,
    ) -> None:
        self.db, self.model, self.sample_rate = Path(db), model, int(sample_rate)
        self.clips = clips or ClipSettings()
        for name, value in (("pre_roll", self.clips.pre_roll), ("post_roll", self.clips.post_roll)):
            if not (math.isfinite(value) and 0 <= value <= 60):
                raise ClipError(f"{name} must be 0 to 60 seconds, got {value}")
        if not (math.isfinite(self.clips.max_clip) and 1 <= self.clips.max_clip <= 600):
            raise ClipError(f"max_clip must be 1 to 600 seconds, got {self.clips.max_clip}")
        self._ring_s = self.clips.max_clip + max_not_heard_s + self.clips.post_roll + 1.0
        self.store: EventStore | None = None
        self._lock = threading.Lock()
        self._rings: dict[str, AudioRing] = {}
        self._pending: dict[str, list[tuple[float, int, Event]]] = {}  # due_s, id, event
        self._offset: dict[str, float] = {}  # source -> unix time minus stream seconds
        self._minute: dict[str, list] = {}  # source -> [minute, updates, levels, counts]
        self._jobs: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self.clips_written = 0
        self.events_written = 0
        self._clip_bytes = 0  # the clip folder's size as of the last prune plus clips since
        self._pruned = 0.0  # time.monotonic() of the last prune

    def open(self) -> None:
        """Open (create, migrate) the database and the clip folder; start the clip writer."""
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.store = EventStore(self.db)
        if self.clips.folder is not None:
            self.clips.folder.mkdir(parents=True, exist_ok=True)
            self._clip_bytes = prune(self.store, self.clips.folder, self.clips.retention)[
                "clip_bytes"
            ]
            self._pruned = time.monotonic()
            self._writer = threading.Thread(target=self._write_clips, name="edge-asc-clips")
            self._writer.daemon = True
            self._writer.start()

    def tap(self, source: str, block: np.ndarray, end_s: float) -> None:
        """The listener's ``audio_tap``: keep the audio and start clips whose post-roll is in."""
        if self.clips.folder is None:
            return
        with self._lock:
            ring = self._rings.get(source)
            if ring is None:
                ring = self._rings[source] = AudioRing(self._ring_s, self.sample_rate)
            ring.push(block, end_s)
            pending = self._pending.get(source)
            if pending:
                self._flush(source, ring, lambda due: due <= ring.end_s)

    def update(self, update: Update) -> None:
        """Fold the update into the minute summary; store the events that ended in it."""
        with self._lock:
            self._offset[update.source] = update.t - update.audio_s
            self._summarise(update)
        for change in update.events:
            if change.kind == "end":
                self._ended(update.source, change.event)

    def events(self, changes: list[EventChange], source: str) -> None:
        """Store the events the stream's end closed; write every clip still waiting."""
        for change in changes:
            if change.kind == "end":
                self._ended(source, change.event)
        with self._lock:
            ring = self._rings.get(source)
            if ring is not None:
                self._flush(source, ring, lambda due: True)

    def close(self) -> None:
        """Write the minute summaries and the clips still waiting; close the database."""
        if self.store is None:
            return
        with self._lock:
            for source in list(self._minute):
                self._write_minute(source)
            for source, ring in self._rings.items():
                self._flush(source, ring, lambda due: True)
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join(timeout=30)
            self._writer = None
        self.store.close()
        self.store = None

    def _ended(self, source: str, event: Event) -> None:
        assert self.store is not None
        end_s = event.end_s if event.end_s is not None else event.start_s
        offset = self._offset.get(source, time.time() - end_s)
        event_id = self.store.add_event(
            source,
            event.label,
            event.start_s,
            end_s,
            offset + event.start_s,
            event.peak_score,
            event.mean_score,
            self.model,
        )
        self.events_written += 1
        if self.clips.folder is None or event.label in self.clips.no_clips_for:
            return
        with self._lock:
            due = end_s + self.clips.post_roll
            self._pending.setdefault(source, []).append((due, event_id, event))
            ring = self._rings.get(source)
            if ring is not None:
                self._flush(source, ring, lambda d: d <= ring.end_s)

    def _flush(self, source: str, ring: AudioRing, ready) -> None:
        """Hand the pending clips of ``source`` for which ``ready(due_s)`` to the writer."""
        waiting = []
        for due, event_id, event in self._pending.get(source, []):
            if not ready(due):
                waiting.append((due, event_id, event))
                continue
            end = event.end_s if event.end_s is not None else event.start_s
            audio = ring.span(event.start_s - self.clips.pre_roll, end + self.clips.post_roll)
            if audio.size:
                self._jobs.put((event_id, event.label, audio))
        self._pending[source] = waiting

    def _write_clips(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            event_id, label, audio = job
            store, folder = self.store, self.clips.folder
            if store is None or folder is None:
                return
            try:
                name = clip_name(event_id, label)
                size = write_clip(folder, name, audio, self.sample_rate)
                store.set_clip(event_id, name, size)
                self.clips_written += 1
                self._clip_bytes += size
                self._retain(store, folder)
            except Exception as exc:  # a full disk must not stop the sensor
                print(
                    f"edge-asc: warning: clip of event {event_id} not written: {exc}",
                    file=sys.stderr,
                )

    def _retain(self, store: EventStore, folder: Path) -> None:
        """Prune when the folder is over its limit, and every :data:`PRUNE_EVERY_S` anyway."""
        limit = self.clips.retention.max_mb
        over = limit is not None and self._clip_bytes > limit * 1e6
        if over or time.monotonic() - self._pruned > PRUNE_EVERY_S:
            self._clip_bytes = prune(store, folder, self.clips.retention)["clip_bytes"]
            self._pruned = time.monotonic()

    def _summarise(self, update: Update) -> None:
        minute = int(update.t // 60)
        state = self._minute.get(update.source)
        if state is not None and state[0] != minute:
            self._write_minute(update.source)
            state = None
        if state is None:
            state = self._minute[update.source] = [minute, 0, [], {}]
        state[1] += 1
        if math.isfinite(update.level_dbfs):
            state[2].append(update.level_dbfs)
        key = update.label if update.decision not in (QUIET, UNKNOWN) else update.decision
        state[3][key] = state[3].get(key, 0) + 1

    def _write_minute(self, source: str) -> None:
        state = self._minute.pop(source, None)
        if state is None or self.store is None or not state[1]:
            return
        minute, n, levels, counts = state
        level = float(np.mean(levels)) if levels else None
        self.store.add_minute(source, minute, n, level, {k: v / n for k, v in counts.items()})
