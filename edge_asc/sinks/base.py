"""The output interface of the listen loop."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_asc.events import EventChange
    from edge_asc.listen import Update


class Sink:
    """An output of ``listen``: opened before the first update, closed after the last.

    Subclasses override what they need; the defaults do nothing. :meth:`update` runs on
    the worker's thread between blocks, so it must not wait long: a sink that talks to
    the network queues the work and returns.
    """

    def open(self) -> None:
        """Get ready (open files, connect)."""

    def update(self, update: Update) -> None:
        """Take one update (its events included: see :attr:`Update.events`)."""

    def events(self, changes: list[EventChange], source: str) -> None:
        """Take events ended outside an update (the stream is over); called once at the end."""

    def close(self) -> None:
        """Flush and release what :meth:`open` took; safe to call twice."""

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
