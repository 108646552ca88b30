"""The event history in one SQLite file: what happened while nobody watched.

Standard library only (``sqlite3``), in WAL mode so the dashboard and ``edge-asc events`` read
while ``listen`` writes. Each ended event is committed on its own, at once, with
``synchronous=FULL``: a ``kill -9`` (or a power cut) at any moment leaves a database that opens
and holds every event that had ended before it. Besides events, a compact per-minute summary
(the share of each label, the mean level) keeps what the sensor heard between events. The
schema carries its version in ``PRAGMA user_version`` and older files are migrated on open.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_asc.errors import EdgeAscError

SCHEMA_VERSION = 2
"""The schema this code writes; files with a lower ``user_version`` are migrated on open."""

_MIGRATIONS: dict[int, list[str]] = {
    # version 1: events only
    1: [
        """CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            label TEXT NOT NULL,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL NOT NULL,
            peak_score REAL NOT NULL,
            mean_score REAL NOT NULL,
            model TEXT NOT NULL,
            clip TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS events_time ON events (start_time)",
        "CREATE INDEX IF NOT EXISTS events_label ON events (label, start_time)",
    ],
    # version 2: clip sizes (retention by disk usage) and the per-minute summary
    2: [
        "ALTER TABLE events ADD COLUMN clip_bytes INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE IF NOT EXISTS minutes (
            source TEXT NOT NULL,
            minute INTEGER NOT NULL,
            updates INTEGER NOT NULL,
            level_dbfs REAL,
            shares TEXT NOT NULL,
            PRIMARY KEY (source, minute)
        ) WITHOUT ROWID""",
    ],
}

_COLUMNS = (
    "id, source, label, start_s, end_s, start_time, end_time, peak_score, mean_score, model, "
    "clip, clip_bytes"
)


class StoreError(EdgeAscError):
    """An event database that cannot be opened or used; one line."""


@dataclass(frozen=True)
class StoredEvent:
    """One row of the ``events`` table.

    Attributes
    ----------
    id : int
        Row id (what the web API names an event by).
    source, label, model : str
        Where it was heard, what, and by which model.
    start_s, end_s : float
        Seconds of audio from the stream's start.
    start_time, end_time : float
        The same instants as unix time.
    peak_score, mean_score : float
        The label's scores over the event.
    clip : str or None
        The clip's file name inside the clip folder (``None``: no clip, or deleted).
    clip_bytes : int
        The clip's size on disk.
    """

    id: int
    source: str
    label: str
    start_s: float
    end_s: float
    start_time: float
    end_time: float
    peak_score: float
    mean_score: float
    model: str
    clip: str | None
    clip_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the web API's and ``events --format json``'s)."""
        return {
            "id": self.id,
            "source": self.source,
            "label": self.label,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "start_time": round(self.start_time, 3),
            "end_time": round(self.end_time, 3),
            "duration_s": round(self.end_s - self.start_s, 3),
            "peak_score": round(self.peak_score, 6),
            "mean_score": round(self.mean_score, 6),
            "model": self.model,
            "clip": self.clip,
            "clip_bytes": self.clip_bytes,
        }


class EventStore:
    """An open event database; every method is safe to call from several threads.

    Parameters
    ----------
    path : str or os.PathLike
        The SQLite file (created with its folder's existing parent if missing).
    readonly : bool
        Open for reading only (``edge-asc events`` without ``--prune``); the file must exist.

    Raises
    ------
    StoreError
        The file is not an SQLite database, is from a newer edge-asc, or cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        where = f"event database '{self.path}'"
        if readonly and not self.path.is_file():
            raise StoreError(f"{where} does not exist")
        try:
            if readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 5000")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{where} cannot be opened: {exc}") from None
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"{where} has schema version {version}; this edge-asc reads up to "
                f"{SCHEMA_VERSION} (upgrade edge-asc)"
            )
        if version < SCHEMA_VERSION:
            if readonly:
                self._db.close()
                raise StoreError(f"{where} has an old schema ({version}); open it for writing")
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        with self._lock:
            try:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    with self._db:  # one transaction per step, version included
                        for statement in _MIGRATIONS[step]:
                            self._db.execute(statement)
                        self._db.execute(f"PRAGMA user_version = {step}")
            except sqlite3.DatabaseError as exc:
                raise StoreError(
                    f"event database '{self.path}' cannot be migrated: {exc}"
                ) from None

    @property
    def version(self) -> int:
        """The file's schema version."""
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def add_event(
        self,
        source: str,
        label: str,
        start_s: float,
        end_s: float,
        start_time: float,
        peak_score: float,
        mean_score: float,
        model: str,
    ) -> int:
        """Insert an ended event and commit it at once; return its id."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO events (source, label, start_s, end_s, start_time, end_time, "
                "peak_score, mean_score, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    source,
                    label,
                    start_s,
                    end_s,
                    start_time,
                    start_time + (end_s - start_s),
                    peak_score,
                    mean_score,
                    model,
                ),
            )
            return int(cursor.lastrowid or 0)

    def set_clip(self, event_id: int, clip: str | None, clip_bytes: int = 0) -> None:
        """Record (or, with ``None``, forget) an event's clip file."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE events SET clip = ?, clip_bytes = ? WHERE id = ?",
                (clip, clip_bytes if clip else 0, event_id),
            )

    def add_minute(
        self, source: str, minute: int, updates: int, level_dbfs: float | None, shares: dict
    ) -> None:
        """Write (or merge into) one source's summary of the minute starting at ``minute*60``."""
        level = level_dbfs if level_dbfs is not None and math.isfinite(level_dbfs) else None
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT updates, level_dbfs, shares FROM minutes WHERE source = ? AND minute = ?",
                (source, minute),
            ).fetchone()
            if row is not None:  # the same minute again (a restart): weight both parts
                old_n, old_level, old_shares = row[0], row[1], json.loads(row[2])
                total = old_n + updates
                labels = set(old_shares) | set(shares)
                shares = {
                    k: (old_shares.get(k, 0) * old_n + shares.get(k, 0) * updates) / total
                    for k in labels
                }
                if old_level is not None and level is not None:
                    level = (old_level * old_n + level * updates) / total
                else:
                    level = level if level is not None else old_level
                updates = total
            text = json.dumps({k: round(v, 4) for k, v in sorted(shares.items())})
            self._db.execute(
                "INSERT OR REPLACE INTO minutes VALUES (?, ?, ?, ?, ?)",
                (source, minute, updates, level, text),
            )

    def events(
        self,
        since: float | None = None,
        until: float | None = None,
        label: str | None = None,
        source: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[StoredEvent]:
        """Events filtered by start time (unix), label and source."""
        where, args = [], []
        for clause, value in (
            ("start_time >= ?", since),
            ("start_time < ?", until),
            ("label = ?", label),
            ("source = ?", source),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY start_time {'DESC' if newest_first else 'ASC'}, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            return [StoredEvent(*row) for row in self._db.execute(sql, args)]

    def event(self, event_id: int) -> StoredEvent | None:
        """One event by id, or ``None``."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id = ?", (int(event_id),)
            ).fetchone()
        return StoredEvent(*row) if row else None

    def labels(self) -> list[str]:
        """Every label that has an event, sorted."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT label FROM events ORDER BY 1")]

    def minutes(self, since: float | None = None, source: str | None = None) -> list[dict]:
        """Per-minute summaries, oldest first."""
        sql = "SELECT source, minute, updates, level_dbfs, shares FROM minutes WHERE minute >= ?"
        args: list[Any] = [math.floor((since or 0) / 60)]
        if source is not None:
            sql += " AND source = ?"
            args.append(source)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY minute, source", args).fetchall()
        return [
            {
                "source": s,
                "time": m * 60,
                "updates": n,
                "level_dbfs": level,
                "shares": json.loads(shares),
            }
            for s, m, n, level, shares in rows
        ]

    def clips(self) -> list[tuple[int, str, float, str, int]]:
        """``(id, label, end_time, clip, clip_bytes)`` of every event with a clip, oldest first."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT id, label, end_time, clip, clip_bytes FROM events "
                    "WHERE clip IS NOT NULL ORDER BY end_time, id"
                )
            )

    def delete_before(self, cutoff: float, keep: set[int] | frozenset[int] = frozenset()) -> int:
        """Delete events that ended before ``cutoff`` (unix) without a kept clip, and minutes."""
        with self._lock, self._db:
            rows = self._db.execute(
                "SELECT id FROM events WHERE end_time < ?", (cutoff,)
            ).fetchall()
            doomed = [(r[0],) for r in rows if r[0] not in keep]
            self._db.executemany("DELETE FROM events WHERE id = ?", doomed)
            self._db.execute("DELETE FROM minutes WHERE minute * 60 + 60 <= ?", (cutoff,))
            return len(doomed)

    def compact(self) -> None:
        """Give freed pages back to the file system (after a large prune)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.ProgrammingError:
                pass
