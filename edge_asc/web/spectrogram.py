"""Spectrograms for the dashboard, with numpy only: live columns, and event PNG images.

The live view needs a few dozen cheap columns a second, not the model's features: a Hann
window, an ``rfft`` and 64 log-spaced bands, quantised to a byte. Event images are the same
bands over a clip, coloured and written as PNG by hand (``zlib`` + ``struct``), so the device
needs no image library.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque

import numpy as np

BANDS = 64
"""Rows of every spectrogram the dashboard shows."""

FLOOR_DB, CEIL_DB = -110.0, -20.0
"""dB (of full scale, per band) mapped to 0 and 255."""

_ANCHORS = np.array(  # a viridis-like ramp: dark blue, blue, green, yellow
    [[13, 8, 35], [59, 28, 140], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=float
)


def band_matrix(n_fft: int, sample_rate: int, bands: int = BANDS) -> np.ndarray:
    """``(bands, n_fft // 2 + 1)``: averages the power of each log-spaced band's bins."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = np.geomspace(50.0, sample_rate / 2, bands + 1)
    matrix = np.zeros((bands, freqs.size), dtype=np.float32)
    for b in range(bands):
        inside = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not inside.any():  # narrower than a bin: take the nearest one
            inside = np.zeros(freqs.size, dtype=bool)
            inside[int(np.argmin(np.abs(freqs - np.sqrt(edges[b] * edges[b + 1]))))] = True
        matrix[b, inside] = 1.0 / inside.sum()
    return matrix


def to_bytes(power: np.ndarray) -> np.ndarray:
    """Band powers (full scale = 1) as 0..255 between :data:`FLOOR_DB` and :data:`CEIL_DB`."""
    db = 10.0 * np.log10(np.maximum(power, 1e-14))
    scaled = (db - FLOOR_DB) / (CEIL_DB - FLOOR_DB) * 255.0
    return np.clip(scaled, 0, 255).astype(np.uint8)


class LiveSpectrogram:
    """Columns of the audio a source hears, a few dozen a second, the newest ``keep`` held.

    The listener only copies its blocks into a small :class:`AudioRing` (microseconds); the
    columns are computed on demand, in batches, when a dashboard client asks (:meth:`refresh`),
    so a sensor nobody watches pays nothing for them.

    Parameters
    ----------
    sample_rate : int
        The audio's rate.
    columns_per_s : float
        Columns a second.
    keep : int
        Columns held for a client that connects.
    """

    def __init__(self, sample_rate: int, columns_per_s: float = 20.0, keep: int = 300) -> None:
        from edge_asc.history.clips import AudioRing

        self.sample_rate = int(sample_rate)
        self.n_fft = 1024 if sample_rate >= 16000 else 512
        self.hop = max(1, round(sample_rate / columns_per_s))
        self.window = np.hanning(self.n_fft).astype(np.float32)
        self.scale = 1.0 / float(self.window.sum()) ** 2 * 4.0  # full-scale sine: about 1
        self.bands = band_matrix(self.n_fft, sample_rate).T.copy()
        self.ring = AudioRing(4.0, sample_rate)
        self.columns: deque[tuple[int, list[int]]] = deque(maxlen=keep)
        self.count = 0  # columns made so far: the sequence number of the next
        self._next_s: float | None = None  # stream time of the next column's first sample

    def push(self, block: np.ndarray, end_s: float) -> None:
        """Keep a block (the caller holds the lock :meth:`refresh` is called under)."""
        self.ring.push(block, end_s)

    def refresh(self) -> None:
        """Make the columns the audio heard since the last call completes."""
        ring = self.ring
        start = ring.start_s if self._next_s is None else max(self._next_s, ring.start_s)
        audio = ring.span(start, ring.end_s)
        n = 0 if audio.size < self.n_fft else 1 + (audio.size - self.n_fft) // self.hop
        if n == 0:
            self._next_s = start
            return
        index = np.arange(n)[:, None] * self.hop + np.arange(self.n_fft)
        power = np.abs(np.fft.rfft(audio[index] * self.window, axis=1)) ** 2 * self.scale
        for column in to_bytes(power @ self.bands).tolist():
            self.columns.append((self.count, column))
            self.count += 1
        self._next_s = start + n * self.hop / self.sample_rate

    def since(self, seq: int) -> list[tuple[int, list[int]]]:
        """Columns with a sequence number from ``seq`` on."""
        return [column for column in list(self.columns) if column[0] >= seq]


def clip_image(audio: np.ndarray, sample_rate: int, max_width: int = 600) -> np.ndarray:
    """``(BANDS, width)`` bytes of a clip's spectrogram, low frequencies at the bottom."""
    audio = np.asarray(audio, dtype=np.float32).ravel()
    n_fft = 1024 if sample_rate >= 16000 else 512
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    hop = max(n_fft // 4, (audio.size - n_fft) // max(1, max_width - 1))
    starts = np.arange(0, audio.size - n_fft + 1, hop)[:max_width]
    window = np.hanning(n_fft).astype(np.float32)
    frames = audio[starts[:, None] + np.arange(n_fft)] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 * (4.0 / float(window.sum()) ** 2)
    image = to_bytes(power @ band_matrix(n_fft, sample_rate).T).T
    return image[::-1]


def colour(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` bytes as ``(H, W, 3)`` RGB bytes through a viridis-like ramp."""
    x = image.astype(float) / 255.0 * (len(_ANCHORS) - 1)
    grid = np.arange(len(_ANCHORS))
    rgb = np.stack([np.interp(x, grid, _ANCHORS[:, c]) for c in range(3)], axis=-1)
    return rgb.astype(np.uint8)


def png(rgb: np.ndarray, scale: int = 2) -> bytes:
    """An ``(H, W, 3)`` uint8 image as PNG bytes (rows repeated ``scale`` times)."""
    rgb = np.repeat(np.ascontiguousarray(rgb, dtype=np.uint8), scale, axis=0)
    height, width = rgb.shape[:2]
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, -1)], 1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
