"""Event clips: the audio of each event, from a bounded in-memory ring, as FLAC, with retention.

The listener hands every mono block to an :class:`AudioRing` (one per source, preallocated:
memory never grows). When an event has ended and its post-roll has been heard, the span from
``start - pre_roll`` to ``end + post_roll`` still in the ring is written as FLAC through
:func:`edge_asc.files.atomic_output`, so the clip folder never holds a half file. Retention
(:func:`prune`) deletes clips by age and by disk usage, oldest first, always keeping the last
few of each label; labels whose audio must never be stored (privacy) get no clip at all.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_asc.errors import EdgeAscError
from edge_asc.files import atomic_output
from edge_asc.history.store import EventStore

ORPHAN_GRACE_S = 60.0
"""Seconds a FLAC file no event names is left alone (its event's row may be on its way)."""


class ClipError(EdgeAscError):
    """Clip settings or a clip folder that cannot be used; one line."""


@dataclass(frozen=True)
class Retention:
    """What to keep.

    Attributes
    ----------
    max_age_days : float or None
        Events (and their clips) older than this are deleted; ``None`` keeps them.
    max_mb : float or None
        The clip folder is kept under this many megabytes (10^6 bytes), oldest clips first.
    keep_last : int
        The newest clips of each label that neither limit deletes.
    """

    max_age_days: float | None = 30.0
    max_mb: float | None = 500.0
    keep_last: int = 3


class AudioRing:
    """The last ``seconds`` of one source's audio, in a preallocated float32 ring.

    Parameters
    ----------
    seconds : float
        How much audio to hold.
    sample_rate : int
        The blocks' rate.
    """

    def __init__(self, seconds: float, sample_rate: int) -> None:
        if not seconds > 0:
            raise ClipError(f"the clip buffer must hold more than 0 seconds, got {seconds}")
        self.sample_rate = int(sample_rate)
        self._data = np.zeros(max(1, round(seconds * sample_rate)), dtype=np.float32)
        self._total = 0  # samples written since the start
        self._end_s = 0.0  # stream time (seconds) at the end of the newest sample

    @property
    def end_s(self) -> float:
        """Stream time at the end of the newest sample held."""
        return self._end_s

    @property
    def start_s(self) -> float:
        """Stream time of the oldest sample held."""
        held = min(self._total, self._data.size)
        return self._end_s - held / self.sample_rate

    def push(self, block: np.ndarray, end_s: float) -> None:
        """Add a block whose last sample ends at ``end_s`` seconds of stream time."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self._total and end_s - block.size / self.sample_rate - self._end_s > 0.01:
            self._total = 0  # a gap (listening was paused): what came before is not adjacent
        size = self._data.size
        if block.size >= size:
            block = block[-size:]
        start = self._total % size
        first = min(block.size, size - start)
        self._data[start : start + first] = block[:first]
        self._data[: block.size - first] = block[first:]
        self._total += block.size
        self._end_s = end_s

    def span(self, start_s: float, end_s: float) -> np.ndarray:
        """A copy of the audio from ``start_s`` to ``end_s`` that is still held (maybe empty)."""
        start_s, end_s = max(start_s, self.start_s), min(end_s, self._end_s)
        if end_s <= start_s:
            return np.zeros(0, dtype=np.float32)
        back_start = round((self._end_s - start_s) * self.sample_rate)
        back_end = round((self._end_s - end_s) * self.sample_rate)
        count = back_start - back_end
        size = self._data.size
        first = (self._total - back_start) % size
        index = (first + np.arange(count)) % size
        return self._data[index]


def clip_name(event_id: int, label: str) -> str:
    """The clip's file name: the event id and a file-system-safe label."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", label)[:40] or "event"
    return f"{event_id:08d}-{safe}.flac"


def write_clip(folder: Path, name: str, audio: np.ndarray, sample_rate: int) -> int:
    """Write ``audio`` as 16-bit FLAC ``folder/name`` atomically; return its size in bytes."""
    import soundfile as sf

    target = folder / name
    with atomic_output(target) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return target.stat().st_size


def inside(folder: Path, name: str) -> Path | None:
    """``folder/name`` resolved, if it is a file inside ``folder``; else ``None``."""
    root = folder.resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_file():
        return None
    return path


def prune(
    store: EventStore, folder: Path, retention: Retention, now: float | None = None
) -> dict[str, int]:
    """Apply ``retention`` to the database and the clip folder.

    Clips older than the maximum age, then the oldest clips while the folder is over its
    limit, are deleted, except the newest ``keep_last`` of each label; events older than the
    maximum age go too (unless their clip is kept), and so do per-minute summaries. FLAC files
    in the folder that no event names (a writer killed between the file and the database)
    are deleted as well.

    Returns
    -------
    dict
        ``clips_deleted``, ``events_deleted``, ``orphans_deleted``, ``clip_bytes`` (after).
    """
    now = time.time() if now is None else now
    clips = store.clips()  # oldest first
    kept: set[int] = set()
    per_label: dict[str, int] = {}
    for event_id, label, _, _, _ in reversed(clips):
        if per_label.get(label, 0) < retention.keep_last:
            kept.add(event_id)
            per_label[label] = per_label.get(label, 0) + 1
    cutoff = None if retention.max_age_days is None else now - retention.max_age_days * 86400
    deleted = orphans = 0
    known: set[str] = set()
    alive: list[tuple[int, str, int]] = []
    for event_id, _, end_time, name, size in clips:
        if event_id not in kept and cutoff is not None and end_time < cutoff:
            _remove(store, folder, event_id, name)
            deleted += 1
        else:
            alive.append((event_id, name, size))
            known.add(name)
    if folder.is_dir():
        for path in folder.glob("*.flac"):
            # temporary files (".name.tmp-...") and files just written are a writer's business
            if path.name in known or path.name.startswith("."):
                continue
            if path.stat().st_mtime < time.time() - ORPHAN_GRACE_S:
                path.unlink(missing_ok=True)
                orphans += 1
    total = sum(size for _, _, size in alive)
    if retention.max_mb is not None:
        limit = retention.max_mb * 1e6
        for event_id, name, size in alive:
            if total <= limit:
                break
            if event_id in kept:
                continue
            _remove(store, folder, event_id, name)
            total -= size
            deleted += 1
    events = store.delete_before(cutoff, kept) if cutoff is not None else 0
    return {
        "clips_deleted": deleted,
        "events_deleted": events,
        "orphans_deleted": orphans,
        "clip_bytes": total,
    }


def _remove(store: EventStore, folder: Path, event_id: int, name: str) -> None:
    path = inside(folder, name)
    if path is not None:
        path.unlink(missing_ok=True)
    store.set_clip(event_id, None)
