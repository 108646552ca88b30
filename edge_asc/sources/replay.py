"""A file replayed as if it were a microphone: same queue, same consumer, same labels.

Everything is scheduled by the samples that arrive, never by wall-clock sleeps: a replayed
file goes through exactly the same queue and worker as the microphone, so the same audio
gives the same patch posteriors as ``edge-asc classify``, whatever the block sizes.
"""

from __future__ import annotations

import os
import threading
import time

from edge_asc.audio import audio_info, iter_audio_blocks
from edge_asc.blocks import reblock
from edge_asc.sources.base import BlockSource, queue_blocks

BLOCK_FRAMES = 1024
"""Frames per block cut from a replayed file (and asked of a microphone)."""


class ReplaySource(BlockSource):
    """A file played into the queue by a producer thread, in callback-sized blocks.

    As fast as the consumer takes them (waiting for room, nothing dropped), or paced like a
    device: block ``k`` is offered once ``start + samples_sent / (rate * speed)`` has passed
    (scheduling by samples; a slow consumer then loses blocks, as with a microphone).

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile reads; it is read at its own rate and downmixed to mono.
    realtime : bool
        Pace the blocks instead of replaying as fast as possible.
    speed : float
        With ``realtime``, the pace as a multiple of real time.
    block_frames : int
        Frames per block.
    max_blocks : int, optional
        Queue capacity (about :data:`QUEUE_SECONDS` of audio by default).

    Raises
    ------
    AudioError
        At construction, if the file is missing or not audio.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        realtime: bool = False,
        speed: float = 1.0,
        block_frames: int = BLOCK_FRAMES,
        max_blocks: int | None = None,
    ) -> None:
        rate = audio_info(path).sample_rate
        self._chunks = iter_audio_blocks(path, rate)  # validates the file now, not in the thread
        super().__init__(
            os.fsdecode(path),
            rate,
            1,
            max_blocks or queue_blocks(rate, block_frames),
        )
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.realtime, self.speed, self.block_frames = realtime, speed, block_frames
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._produce, name="edge-asc-replay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _produce(self) -> None:
        try:
            start = time.monotonic()
            sent = 0
            for block in reblock(self._chunks, self.block_frames):
                if self._stop.is_set():
                    return
                sent += len(block)
                if self.realtime:
                    # A device hands a block over once its last sample has been recorded.
                    delay = start + sent / (self.sample_rate * self.speed) - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    self.queue.offer(block)
                elif not self.queue.put(block, self._stop):
                    return
            self.queue.close()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self.queue.fail(exc)


def replay_source(
    path: str | os.PathLike[str],
    realtime: bool = False,
    speed: float = 1.0,
    block_frames: int = BLOCK_FRAMES,
    max_blocks: int | None = None,
) -> ReplaySource:
    """A :class:`ReplaySource` for ``path`` (see there); not started yet."""
    return ReplaySource(path, realtime, speed, block_frames, max_blocks)
