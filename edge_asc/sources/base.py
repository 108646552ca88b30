"""The one interface every audio source has: blocks of float32 at a known rate.

Why a queue: PortAudio calls the stream callback on its own real-time thread, and a callback
that waits (for a lock, for the model, for the terminal) makes the driver drop audio. So a
producer only copies its block into a bounded :class:`BlockQueue` and returns; when the queue
is full the block is dropped and counted, never waited for. The consumer takes blocks out with
:meth:`BlockSource.blocks`.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from types import TracebackType

import numpy as np

QUEUE_SECONDS = 2.0
"""Audio the queue holds before blocks are dropped (the consumer's slack)."""

POLL_SECONDS = 0.1
"""How long the consumer waits for a block before checking on the producer."""


class BlockQueue:
    """A bounded FIFO of audio blocks from one producer to one consumer.

    :meth:`offer` never waits: when the queue is full the block is dropped and counted. It
    is what an audio callback calls. :meth:`put` waits for room instead, for a producer that
    may be slowed down (a file replayed as fast as the consumer goes).

    Parameters
    ----------
    max_blocks : int
        Blocks held before :meth:`offer` starts dropping.
    """

    def __init__(self, max_blocks: int = 64) -> None:
        if max_blocks < 1:
            raise ValueError(f"max_blocks must be at least 1, got {max_blocks}")
        self.max_blocks = max_blocks
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max_blocks)
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self.dropped_blocks = 0
        self.dropped_frames = 0

    def offer(self, block: np.ndarray) -> bool:
        """Enqueue a copy of ``block`` without waiting; return False if it was dropped."""
        data = np.array(block, dtype=np.float32, copy=True)
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped_blocks += 1
            self.dropped_frames += len(data)
            return False
        return True

    def put(self, block: np.ndarray, stop: threading.Event | None = None) -> bool:
        """Enqueue a copy of ``block``, waiting for room; False if ``stop`` was set first."""
        data = np.array(block, dtype=np.float32, copy=True)
        while stop is None or not stop.is_set():
            try:
                self._queue.put(data, timeout=POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def close(self) -> None:
        """Mark the end of the stream (after the producer's last block)."""
        self._closed.set()

    def fail(self, error: BaseException) -> None:
        """End the stream with an error the consumer re-raises once the queue is drained."""
        self._error = error
        self._closed.set()

    def get(self, timeout: float = POLL_SECONDS) -> np.ndarray | None:
        """The next block; ``None`` at the end of the stream.

        Raises
        ------
        queue.Empty
            If nothing arrived within ``timeout`` seconds and the stream is not over.
        BaseException
            The producer's error (see :meth:`fail`), once every block before it was taken.
        """
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            # close() comes after the last put, so a closed, empty queue stays empty.
            if self._closed.is_set() and self._queue.empty():
                if self._error is not None:
                    raise self._error from None
                return None
            raise

    def __len__(self) -> int:
        return self._queue.qsize()


def queue_blocks(rate: float, block_frames: int, seconds: float = QUEUE_SECONDS) -> int:
    """Queue capacity, in blocks, that holds ``seconds`` of audio (at least 4)."""
    return max(4, math.ceil(seconds * rate / block_frames))


class BlockSource:
    """Where blocks come from: a started producer filling a :class:`BlockQueue`.

    Use as a context manager (starts and stops the producer) and iterate :meth:`blocks`.

    Attributes
    ----------
    name : str
        What is being listened to, for messages.
    sample_rate : float
        Rate of the blocks, in Hz.
    channels : int
        Channels of the blocks (mono blocks may also be 1-D).
    queue : BlockQueue
        The queue between producer and consumer.
    overflows : int
        Blocks the driver reported as incomplete (input overflow).
    """

    def __init__(self, name: str, sample_rate: float, channels: int, max_blocks: int) -> None:
        self.name = name
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.queue = BlockQueue(max_blocks)
        self.overflows = 0

    @property
    def dropped_blocks(self) -> int:
        """Blocks lost because the consumer fell behind."""
        return self.queue.dropped_blocks

    def start(self) -> None:
        """Start producing."""

    def stop(self) -> None:
        """Stop producing and release the device; safe to call twice."""

    def _idle(self) -> None:
        """Called when no block came for a poll interval; raise to end the stream."""

    def blocks(self) -> Iterator[np.ndarray]:
        """The blocks, in order, until the stream ends."""
        while True:
            try:
                block = self.queue.get()
            except queue.Empty:
                self._idle()
                continue
            if block is None:
                return
            yield block

    def __enter__(self) -> BlockSource:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
