"""Turning SIGTERM and SIGHUP into an exception, so that cleanup code runs.

Python runs ``finally`` blocks and context managers' exits for Ctrl-C (SIGINT raises
``KeyboardInterrupt``), but SIGTERM (``kill``, ``systemctl stop``, a container shutting down)
and SIGHUP (the terminal closed) end the process on the spot by default: the temporary file
:func:`edge_asc.files.atomic_output` was writing stays behind, and a live microphone is not
closed. :func:`graceful_signals` makes both raise :class:`Terminated` in the main thread
instead, so the same cleanup runs as for Ctrl-C, and the process still exits with the status a
shell reports for that signal (128 + its number).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

GRACEFUL_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals :func:`graceful_signals` catches by default (SIGHUP does not exist on Windows)."""


class Terminated(SystemExit):
    """Raised in the main thread when a signal asks the process to stop.

    A ``SystemExit`` (not an ``Exception``), so ``except Exception`` blocks let it through,
    while ``finally`` blocks and ``except BaseException`` cleanup still run. Its exit code is
    ``128 + signum``, what a shell shows for a process ended by that signal.

    Parameters
    ----------
    signum : int
        The signal received.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.signal_name = signal.Signals(signum).name

    def __str__(self) -> str:
        return f"stopped by {self.signal_name}"


@contextmanager
def graceful_signals(
    signals: Sequence[int] = GRACEFUL_SIGNALS,
    prog: str | None = "edge-asc",
) -> Iterator[None]:
    """Raise :class:`Terminated` in the main thread when one of ``signals`` arrives.

    The previous handlers come back when the block ends. Outside the main thread (where
    Python cannot install handlers) it does nothing.

    Parameters
    ----------
    signals : sequence of int, optional
        Signals to catch; SIGTERM and SIGHUP by default. SIGINT already raises
        ``KeyboardInterrupt`` and SIGKILL cannot be caught.
    prog : str or None, optional
        When a :class:`Terminated` leaves the block, print ``<prog>: stopped by SIGTERM``
        (one line) on stderr before it propagates; ``None`` prints nothing.

    Yields
    ------
    None

    Examples
    --------
    >>> with graceful_signals():  # doctest: +SKIP
    ...     with atomic_output("x.npy") as tmp:
    ...         write(tmp)  # `kill` now removes tmp instead of leaving it behind
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # a second signal while cleaning up: let the cleanup finish
            return
        stopping = True
        raise Terminated(signum)

    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
        yield
    except Terminated as exc:
        if prog is not None:
            print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        raise
    finally:
        for signum, old in previous.items():
            signal.signal(signum, _restorable(old))


def _restorable(handler: Callable[..., Any] | int | None) -> Callable[..., Any] | int:
    """A handler ``signal.signal`` accepts: ``None`` (set outside Python) means the default."""
    return signal.SIG_DFL if handler is None else handler
