"""From a spectrogram to model inputs: 128x128 patches and per-bin normalisation.

The paper splits each spectrogram into non-overlapping 128x128 patches; the runtime may
step patches by a smaller hop for quicker updates. Normalisation statistics are computed
by training over its training split only and shipped with the model, so the runtime
scales its spectrograms exactly as training did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def cut_patches(spectrogram: np.ndarray, width: int = 128, hop: int | None = None) -> np.ndarray:
    """Cut a ``(bins, T)`` spectrogram into ``(n, bins, width)`` patches along time.

    Parameters
    ----------
    spectrogram : numpy.ndarray
        ``(bins, T)`` array.
    width : int
        Frames per patch (128 in the paper).
    hop : int, optional
        Frames between patch starts; ``None`` means ``width`` (non-overlapping). Frames
        after the last whole patch are dropped.

    Returns
    -------
    numpy.ndarray
        ``(n, bins, width)`` float32 copy, ``n = (T - width) // hop + 1`` (0 if T < width).
    """
    if spectrogram.ndim != 2:
        raise ValueError(f"expected a (bins, frames) spectrogram, got shape {spectrogram.shape}")
    hop = width if hop is None else hop
    if width < 1 or hop < 1:
        raise ValueError("patch width and hop must be positive")
    bins, frames = spectrogram.shape
    if frames < width:
        return np.empty((0, bins, width), dtype=np.float32)
    windows = sliding_window_view(spectrogram, width, axis=1)[:, ::hop]  # (bins, n, width)
    return np.ascontiguousarray(windows.transpose(1, 0, 2), dtype=np.float32)


@dataclass(frozen=True)
class NormStats:
    """Per-frequency-bin mean and standard deviation of one spectrogram kind.

    Attributes
    ----------
    mean, std : numpy.ndarray
        ``(bins,)`` float64; ``std`` is floored so a constant bin cannot divide by zero.
    """

    mean: np.ndarray
    std: np.ndarray

    STD_FLOOR = 1e-3

    @classmethod
    def fit(cls, spectrograms: Iterable[np.ndarray]) -> NormStats:
        """Statistics over every frame of ``spectrograms`` (each ``(bins, T)``).

        Sums are accumulated in float64 (shifted by the first frame's values, which keeps
        the variance accurate for dB-scaled data far from zero).
        """
        count, total, total_sq, shift = 0, None, None, None
        for spec in spectrograms:
            values = np.asarray(spec, dtype=np.float64)
            if values.ndim != 2 or values.shape[1] == 0:
                continue
            if shift is None:
                shift = values[:, 0].copy()
                total = np.zeros_like(shift)
                total_sq = np.zeros_like(shift)
            centred = values - shift[:, None]
            total += centred.sum(axis=1)
            total_sq += (centred**2).sum(axis=1)
            count += values.shape[1]
        if count == 0 or shift is None or total is None or total_sq is None:
            raise ValueError("no spectrogram frames to compute normalisation statistics from")
        mean_centred = total / count
        variance = np.maximum(total_sq / count - mean_centred**2, 0.0)
        return cls(mean=shift + mean_centred, std=np.maximum(np.sqrt(variance), cls.STD_FLOOR))

    def apply(self, spectrogram: np.ndarray) -> np.ndarray:
        """Normalise a ``(bins, T)`` spectrogram or ``(n, bins, T)`` patches, as float32."""
        if spectrogram.shape[-2] != self.mean.shape[0]:
            raise ValueError(
                f"spectrogram has {spectrogram.shape[-2]} bins, statistics have "
                f"{self.mean.shape[0]}"
            )
        scaled = (spectrogram - self.mean[:, None]) / self.std[:, None]
        return scaled.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in a model bundle's manifest)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormStats:
        """Inverse of :meth:`to_dict`, with shape checks."""
        mean = np.asarray(data["mean"], dtype=np.float64)
        std = np.asarray(data["std"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape or not np.all(std > 0):
            raise ValueError("normalisation stats need equal-length 1-D mean and std, std > 0")
        return cls(mean=mean, std=std)


class PatchCutter:
    """Streaming :func:`cut_patches`: frames in, the patches they complete out.

    Like the frame buffer of the spectrograms, it keeps only the frames a future patch can
    still use, so memory stays flat on an endless stream.

    Parameters
    ----------
    bins : int
        Rows of each frame.
    width : int
        Frames per patch.
    hop : int, optional
        Frames between patch starts (``width`` by default: non-overlapping).
    """

    def __init__(self, bins: int, width: int = 128, hop: int | None = None) -> None:
        hop = width if hop is None else hop
        if width < 1 or not 1 <= hop <= width:
            raise ValueError(f"patch hop must be between 1 and {width} frames, got {hop}")
        self.bins, self.width, self.hop = bins, width, hop
        self.reset()

    def reset(self) -> None:
        """Forget every frame, to start a new stream."""
        self._buffer = np.zeros((self.bins, 0), dtype=np.float32)
        self._buffer_start = 0  # stream frame index of _buffer[:, 0]
        self.patches_done = 0

    @property
    def frames_held(self) -> int:
        """Frames kept for the patches still to come (less than ``2 * width``)."""
        return self._buffer.shape[1]

    def first_frame(self, index: int) -> int:
        """Stream frame index where patch ``index`` starts."""
        return index * self.hop

    def push(self, frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add ``(bins, n)`` new frames; return ``(index, (bins, width) patch)`` completed."""
        if frames.shape[1]:
            self._buffer = np.concatenate([self._buffer, frames], axis=1)
        out = []
        while True:
            start = self.first_frame(self.patches_done) - self._buffer_start
            if start + self.width > self._buffer.shape[1]:
                break
            out.append((self.patches_done, self._buffer[:, start : start + self.width]))
            self.patches_done += 1
        keep_from = self.first_frame(self.patches_done) - self._buffer_start
        if keep_from > 0:
            self._buffer = self._buffer[:, keep_from:]
            self._buffer_start += keep_from
        return out
