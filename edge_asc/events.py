"""Events with a start and an end, from the stream of decisions.

An event of a label starts when the decision names that label (its score already passed the
label's threshold) and ends once the label has not been heard for ``max_not_heard_s`` seconds
of audio, like Frigate's ``max_not_heard``: a short dip into ``unknown`` does not split one
dog barking into ten events. Times are seconds of audio from the stream's start, so a file
(``classify --events``) and a live stream (``listen``) give the same events for the same audio.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from edge_asc.decision import QUIET, UNKNOWN
from edge_asc.errors import EdgeAscError

DEFAULT_MAX_NOT_HEARD_S = 5.0
"""Seconds without the label before its event ends."""


@dataclass
class Event:
    """One event: a label heard from ``start_s`` to ``end_s`` (``None`` while ongoing)."""

    label: str
    start_s: float
    end_s: float | None
    peak_score: float
    mean_score: float
    updates: int

    def to_dict(self, kind: str) -> dict[str, Any]:
        """JSON-ready form: ``{"event": "start"|"end", ...}``."""
        data: dict[str, Any] = {
            "event": kind,
            "label": self.label,
            "start_s": round(self.start_s, 3),
            "end_s": None if self.end_s is None else round(self.end_s, 3),
            "peak_score": round(self.peak_score, 6),
            "mean_score": round(self.mean_score, 6),
        }
        return data


@dataclass(frozen=True)
class EventChange:
    """An event that started or ended at an update."""

    kind: str  # "start" or "end"
    event: Event  # as it was at that moment

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return self.event.to_dict(self.kind)


class EventTracker:
    """Turns decisions into events, one open event per label at most.

    Parameters
    ----------
    max_not_heard_s : float
        Seconds of audio without the label after which its event ends.
    """

    def __init__(self, max_not_heard_s: float = DEFAULT_MAX_NOT_HEARD_S) -> None:
        if not (math.isfinite(max_not_heard_s) and max_not_heard_s >= 0):
            raise EdgeAscError(
                f"max not heard must be a finite number of seconds >= 0, got {max_not_heard_s}"
            )
        self.max_not_heard_s = max_not_heard_s
        self._open: dict[str, tuple[Event, float, float]] = {}  # label -> (event, sum, last heard)

    @property
    def ongoing(self) -> list[Event]:
        """Events that have started and not ended."""
        return [event for event, _, _ in self._open.values()]

    def update(self, t_s: float, decision: str, score: float) -> list[EventChange]:
        """Fold in the decision at ``t_s`` seconds of audio; return events started or ended."""
        changes = []
        for label in list(self._open):
            event, total, last = self._open[label]
            if label != decision and t_s - last >= self.max_not_heard_s:
                changes.append(self._close(label, last))
        if decision not in (QUIET, UNKNOWN):
            if decision in self._open:
                event, total, _ = self._open[decision]
                event.updates += 1
                event.peak_score = max(event.peak_score, score)
                total += score
                event.mean_score = total / event.updates
                self._open[decision] = (event, total, t_s)
            else:
                event = Event(decision, t_s, None, score, score, 1)
                self._open[decision] = (event, score, t_s)
                changes.append(EventChange("start", dataclasses.replace(event)))
        return changes

    def finish(self, t_s: float | None = None) -> list[EventChange]:
        """End every ongoing event (the stream is over), at its last update or ``t_s``."""
        return [self._close(label, t_s) for label in list(self._open)]

    def _close(self, label: str, end_s: float | None) -> EventChange:
        event, _, last = self._open.pop(label)
        event.end_s = last if end_s is None else end_s
        return EventChange("end", event)
