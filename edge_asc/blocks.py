"""Small operations on blocks of samples, shared by sources and commands."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


def reblock(chunks: Iterable[np.ndarray], frames: int) -> Iterator[np.ndarray]:
    """Cut a stream of 1-D chunks into blocks of exactly ``frames`` (the last may be shorter)."""
    if frames < 1:
        raise ValueError(f"block size must be at least 1 frame, got {frames}")
    pending = np.zeros(0, dtype=np.float32)
    for chunk in chunks:
        pending = np.concatenate([pending, chunk]) if pending.size else chunk
        whole = pending.size // frames * frames
        for start in range(0, whole, frames):
            yield pending[start : start + frames]
        pending = pending[whole:]
    if pending.size:
        yield pending


def downmix(block: np.ndarray) -> np.ndarray:
    """Mono float32 of a ``(frames,)`` or ``(frames, channels)`` block (channel mean)."""
    data = np.asarray(block, dtype=np.float32)
    if data.ndim == 1:
        return data
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)
