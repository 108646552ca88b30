"""Cutting a stream of samples into overlapping frames, whatever size the blocks come in.

The frame grid is fixed by the sample index alone, never by how the input was split, so a
signal pushed in one block or in a thousand gives the same frames: this is what lets the
batch and streaming forms of every spectrogram be one piece of code.
"""

from __future__ import annotations

import numpy as np


class FrameBuffer:
    """Holds the samples not yet consumed and hands out every frame that became complete.

    Frame ``t`` covers input samples ``[t * hop + start, t * hop + start + frame_length)``.
    A negative ``start`` means the signal is taken as zeros before its first sample (the
    left padding that centres frame 0 on sample 0); a positive one skips samples.

    Parameters
    ----------
    frame_length : int
        Samples per frame.
    hop : int
        Samples between the starts of consecutive frames.
    start : int
        Input index at which frame 0 starts (may be negative).
    """

    def __init__(self, frame_length: int, hop: int, start: int = 0) -> None:
        if frame_length < 1 or hop < 1:
            raise ValueError("frame_length and hop must be positive")
        self.frame_length = frame_length
        self.hop = hop
        self._pending = np.zeros(max(0, -start))
        self._skip = max(0, start)
        self.frames_out = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the newly complete frames as a ``(k, frame_length)`` array.

        The frames are a read-only strided view (no copy) of the samples held.
        """
        if self._skip:
            dropped = min(self._skip, samples.shape[0])
            samples = samples[dropped:]
            self._skip -= dropped
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        buf = np.ascontiguousarray(buf, dtype=np.float64)
        if buf.shape[0] < self.frame_length:
            self._pending = buf.copy()
            return np.empty((0, self.frame_length))
        count = (buf.shape[0] - self.frame_length) // self.hop + 1
        step = buf.strides[0]
        frames = np.ndarray(
            (count, self.frame_length), np.float64, buf, strides=(step * self.hop, step)
        )  # what as_strided does, without its overhead (this runs per push and level)
        frames.flags.writeable = False
        consumed = count * self.hop
        self._pending = buf[consumed:].copy()
        # A frame shorter than the hop leaves a gap: the next frame starts past the buffer.
        self._skip = max(0, consumed - buf.shape[0])
        self.frames_out += count
        return frames
