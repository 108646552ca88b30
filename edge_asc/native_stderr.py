"""Keeping native libraries' chatter off the one-line output of the commands.

LiteRT announces its XNNPACK delegate on file descriptor 2, ALSA probes devices noisily when
PortAudio starts, and PortAudio prints its own diagnostics from its audio thread when a device
disappears. None of that goes through Python's ``sys.stderr``, so it would break the promise
of one-line errors. Failures still surface as Python exceptions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send C-level writes to fd 2 to /dev/null for the duration of the block."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. under a test runner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class NativeStderrParked:
    """While a stream runs, send C-level writes to fd 2 to /dev/null, but keep Python's.

    Python's ``sys.stderr`` is moved to a duplicate of the real stderr meanwhile, so
    messages from Python still show. :meth:`park` and :meth:`restore` may each be called
    more than once.
    """

    def __init__(self) -> None:
        self._saved_fd: int | None = None
        self._saved_stream: Any = None

    def park(self) -> None:
        """Start silencing fd 2."""
        if self._saved_fd is not None:
            return
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # no real stderr (a test runner)
            return
        sys.stderr.flush()
        self._saved_fd = os.dup(fd)
        self._saved_stream = sys.stderr
        sys.stderr = open(  # closed in restore()
            self._saved_fd,
            "w",
            buffering=1,
            encoding=sys.stderr.encoding,
            errors="backslashreplace",
            closefd=False,
        )
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)

    def restore(self) -> None:
        """Give fd 2 and ``sys.stderr`` back."""
        if self._saved_fd is None:
            return
        parked, sys.stderr = sys.stderr, self._saved_stream
        parked.flush()
        parked.close()
        os.dup2(self._saved_fd, sys.stderr.fileno())
        os.close(self._saved_fd)
        self._saved_fd = None
