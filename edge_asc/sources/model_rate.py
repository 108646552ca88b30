"""Any source, as the model wants it: mono float32 at the model's rate, cut to a duration.

Downmixing and resampling happen here, once, so the worker loop only ever sees blocks it can
push into the engine. Resampling is a streaming soxr resampler whose state carries across
blocks, with the same quality as :mod:`edge_asc.audio`, so a replayed file matches
``classify`` whatever the device's rate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType

import numpy as np
import soxr

from edge_asc.audio import RESAMPLE_QUALITY
from edge_asc.blocks import downmix
from edge_asc.sources.base import BlockSource


class ModelRateSource:
    """Wrap a :class:`BlockSource` so its blocks come out mono at ``sample_rate``.

    Parameters
    ----------
    source : BlockSource
        The source to wrap (started and stopped with this wrapper).
    sample_rate : int
        The model's rate.
    duration_s : float, optional
        End the stream after this many seconds of the source's audio.

    Attributes
    ----------
    frames_in : int
        Frames taken from the source so far (at its own rate).
    resample_seconds : float
        Wall time spent downmixing and resampling.
    """

    def __init__(
        self, source: BlockSource, sample_rate: int, duration_s: float | None = None
    ) -> None:
        self.source = source
        self.sample_rate = int(sample_rate)
        self.limit = None if duration_s is None else max(0, round(duration_s * source.sample_rate))
        self.frames_in = 0
        self.resample_seconds = 0.0

    @property
    def name(self) -> str:
        """The wrapped source's name."""
        return self.source.name

    @property
    def input_rate(self) -> float:
        """The wrapped source's rate, in Hz."""
        return self.source.sample_rate

    @property
    def resampling(self) -> bool:
        """Whether the source's rate differs from the model's."""
        return self.source.sample_rate != self.sample_rate

    @property
    def audio_s(self) -> float:
        """Seconds of the source's audio taken so far."""
        return self.frames_in / self.source.sample_rate

    @property
    def dropped_blocks(self) -> int:
        """Blocks the source lost because the consumer fell behind."""
        return self.source.dropped_blocks

    @property
    def overflows(self) -> int:
        """Blocks the source's driver reported as incomplete."""
        return self.source.overflows

    def blocks(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks at :attr:`sample_rate`, until the source or the duration ends."""
        resampler = None
        if self.resampling:
            resampler = soxr.ResampleStream(
                self.source.sample_rate,
                self.sample_rate,
                1,
                dtype="float32",
                quality=RESAMPLE_QUALITY,
            )
        blocks = self.source.blocks()
        try:
            for block in blocks:
                started = time.perf_counter()
                mono = downmix(block)
                if self.limit is not None:
                    mono = mono[: self.limit - self.frames_in]
                self.frames_in += mono.size
                last = self.limit is not None and self.frames_in >= self.limit
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                self.resample_seconds += time.perf_counter() - started
                yield mono
                if last:
                    return
            if resampler is not None:  # the stream ended: flush what the resampler holds
                yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        finally:
            blocks.close()

    def __enter__(self) -> ModelRateSource:
        self.source.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.source.stop()
