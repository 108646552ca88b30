"""The five spectrograms, defined once, computed batch or streaming by the same code.

:class:`FeatureStream` is the only implementation: push blocks of samples of any size and it
returns, per requested spectrogram, the frames that became complete. :func:`compute` is the
batch form, and is nothing but one push of the whole signal, so the two cannot drift apart.

Frame ``t`` of every spectrogram is centred on sample ``t * hop_length``, with the signal
taken as zeros before its first sample (librosa's ``center=True`` with constant padding,
but only ever at the start: a frame is produced once all the samples it needs have
arrived, never by padding the end). Each spectrogram therefore has a *lookahead*: how many
samples past a frame's centre must arrive before that frame is complete.

When several STFT-based spectrograms are requested together, each STFT frame is computed
once and feeds all of them.

Streaming and batch agree bit for bit, by construction: every step is either elementwise,
a transform of one frame at a time (numpy's FFT runs each row on its own), or a
matrix-vector product of fixed shape per frame. A BLAS matrix-matrix product over all the
frames of a push would be faster per call, but rounds differently depending on how many
frames it is given, so it is not used. Filter banks run in float32 (their weights and
inputs are non-negative, so nothing cancels and the result is good to ~1e-5 dB); the FFT
and the CQT stay float64. Only numpy is imported: the runtime loads nothing of scipy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

import edge_asc.features.filterbanks as filterbanks
from edge_asc.features.config import KINDS, STFT_KINDS, FeatureConfig
from edge_asc.features.cqt import CQTStream, cqt_plan
from edge_asc.features.framing import FrameBuffer

# Longest block computed in one go. Each push costs a fixed ~50 us of numpy calls besides its
# frames, so a few large pushes are much cheaper per second of audio than many small ones;
# beyond ~16 k samples the STFT's per-push temporaries (a megabyte of spectra) outgrow the
# cache and it slows down again, so longer blocks are computed in pieces of this size.
PIECE_SAMPLES = 16384


@dataclass(frozen=True)
class FrameTiming:
    """When a spectrogram's frames become available.

    Attributes
    ----------
    lookahead : int
        Samples past frame ``t``'s centre (``t * hop``) that must have arrived before the
        frame is complete: frame ``t`` is out once ``t * hop + lookahead`` samples are in.
    context : int
        Input samples one frame depends on.
    hop : int
        Samples between frames.
    """

    lookahead: int
    context: int
    hop: int

    def frames_for(self, n_samples: int) -> int:
        """How many frames ``n_samples`` of audio yield."""
        if n_samples < self.lookahead:
            return 0
        return (n_samples - self.lookahead) // self.hop + 1


def parse_kinds(kinds: str | Iterable[str]) -> tuple[str, ...]:
    """Validate spectrogram names (``"cqt,logmel"``, ``"all"`` or a list), keeping order.

    Raises
    ------
    ValueError
        For an unknown name, with the valid ones in the message.
    """
    names = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    if names == ["all"]:
        return KINDS
    unknown = [k for k in names if k not in KINDS]
    if unknown or not names:
        raise ValueError(
            f"unknown spectrogram {', '.join(map(repr, unknown)) or '(none)'}; "
            f"choose from {', '.join(KINDS)} or 'all'"
        )
    return tuple(dict.fromkeys(names))


def timing(kind: str, config: FeatureConfig) -> FrameTiming:
    """The :class:`FrameTiming` of spectrogram ``kind`` under ``config``."""
    (kind,) = parse_kinds([kind])
    hop = config.hop_length
    if kind == "cqt":
        plan = cqt_plan(config)
        return FrameTiming(lookahead=plan.lookahead, context=plan.context, hop=hop)
    lookahead, context = config.n_fft // 2, config.n_fft
    if kind == "mfcc":  # the delta of frame t needs frame t + 1 (paper eq. 9)
        lookahead, context = lookahead + hop, context + 2 * hop
    return FrameTiming(lookahead=lookahead, context=context, hop=hop)


def power_to_db(power: np.ndarray, amin: float) -> np.ndarray:
    """``10 log10(max(power, amin))``: the log compression every spectrogram ends with.

    Computed in float64 whatever ``power``'s type, so the floor is exactly ``amin``.
    """
    return 10.0 * np.log10(np.maximum(power.astype(np.float64, copy=False), amin))


def hamming(length: int) -> np.ndarray:
    """Periodic Hamming window, ``scipy.signal.get_window("hamming", length)``."""
    if length == 1:
        return np.ones(1)  # as scipy: a one-sample window passes its sample
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(length) / length)


class _Bank:
    """A filter bank applied to frames of a spectrum: ``(k, n_freq)`` in, ``(k, rows)`` out.

    Each frame's result is a stack of vector-matrix products of fixed shapes, in one call
    per product: numpy runs each as its own BLAS matrix-vector product, so a frame's result
    does not depend on how many frames came with it (see the module docstring). Banks whose
    rows are zero outside a narrow range (Mel, linear bands) are split into groups of
    consecutive rows, each multiplied over its columns' span only: an eighth of the
    arithmetic of the dense product, in a few calls. A dense bank (gammatone) stays whole.

    Parameters
    ----------
    bank : numpy.ndarray
        ``(rows, n_freq)`` non-negative weights; applied in float32.
    groups : int
        Groups of rows to try; kept only if it at least halves the arithmetic.
    """

    def __init__(self, bank: np.ndarray, groups: int = 8) -> None:
        self.rows = bank.shape[0]
        parts = []
        for rows in np.array_split(np.arange(self.rows), groups):
            used = np.flatnonzero((bank[rows] != 0).any(axis=0))
            lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
            weights = np.ascontiguousarray(bank[rows, lo:hi].T, dtype=np.float32)
            parts.append((slice(int(rows[0]), int(rows[-1]) + 1), lo, hi, weights))
        if 2 * sum(w.size for *_, w in parts) > bank.size:
            dense = np.ascontiguousarray(bank.T, dtype=np.float32)
            parts = [(slice(0, self.rows), 0, bank.shape[1], dense)]
        self._parts = parts

    def __call__(self, spectra: np.ndarray) -> np.ndarray:
        """``bank @ spectrum`` for every row of ``spectra``, as float32 ``(k, rows)``."""
        frames = spectra.astype(np.float32)[:, None, :]
        if len(self._parts) == 1:
            return np.matmul(frames, self._parts[0][3])[:, 0, :]
        out = np.empty((spectra.shape[0], self.rows), dtype=np.float32)
        for rows, lo, hi, weights in self._parts:
            out[:, rows] = np.matmul(frames[:, :, lo:hi], weights)[:, 0, :]
        return out


class _STFTFrames:
    """The shared STFT: Hamming-windowed frames of ``n_fft`` samples, as power spectra.

    Only the ``win_length`` windowed samples are transformed (zero-padded to ``n_fft``):
    leaving out the zeros around them shifts the frame circularly, which changes the phase
    of the spectrum but not its power.
    """

    def __init__(self, config: FeatureConfig) -> None:
        self._window = hamming(config.win_length)
        self._offset = (config.n_fft - config.win_length) // 2
        self._n_fft = config.n_fft
        self._frames = FrameBuffer(config.n_fft, config.hop_length, start=-(config.n_fft // 2))

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Power spectra ``(k, n_fft // 2 + 1)`` of the frames completed by ``samples``."""
        frames = self._frames.push(samples)
        windowed = frames[:, self._offset : self._offset + self._window.size] * self._window
        spectrum = np.fft.rfft(windowed, n=self._n_fft, axis=1)
        # |X|^2 = re^2 + im^2, squared in place on the spectrum's own float64 pairs: the same
        # arithmetic as spectrum.real**2 + spectrum.imag**2 without its two strided
        # temporaries (a megabyte per push), which cost more than the FFT itself.
        pairs = spectrum.view(np.float64)
        np.multiply(pairs, pairs, out=pairs)
        return np.add(pairs[:, 0::2], pairs[:, 1::2])


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of length ``n_in``, transposed.

    ``x @ dct_matrix(n, m)`` equals ``scipy.fft.dct(x, type=2, norm="ortho")[..., :m]``.

    Returns
    -------
    numpy.ndarray
        ``(n_in, n_out)`` float64.
    """
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return np.ascontiguousarray(basis)


class _Deltas:
    """Stacks cepstra with their deltas, delta[t] = (c[t+1] - c[t-1]) / 2 (paper eq. 9).

    Frame t is emitted once frame t + 1 exists; before the first frame the first is
    repeated, so delta[0] = (c[1] - c[0]) / 2.
    """

    def __init__(self) -> None:
        self._history: np.ndarray | None = None  # the last two cepstra not yet centred

    def push(self, cepstra: np.ndarray) -> np.ndarray:
        if cepstra.shape[1] == 0:
            return np.empty((2 * cepstra.shape[0], 0))
        if self._history is None:
            self._history = cepstra[:, :1]
        joined = np.concatenate([self._history, cepstra], axis=1)
        self._history = joined[:, -2:]
        centre = joined[:, 1:-1]
        delta = (joined[:, 2:] - joined[:, :-2]) / 2.0
        return np.vstack([centre, delta])


class FeatureStream:
    """Incremental front-end for one or more spectrograms of one configuration.

    Parameters
    ----------
    kinds : str or sequence of str
        Spectrograms to compute (``"stft"``, ``"logmel"``, ``"mfcc"``, ``"cqt"``,
        ``"gam"``, a comma-separated list, or ``"all"``).
    config : FeatureConfig, optional
        Settings; the paper's defaults when omitted.

    Examples
    --------
    >>> stream = FeatureStream("logmel,cqt")
    >>> for block in blocks:                       # doctest: +SKIP
    ...     new = stream.push(block)               # {"logmel": (128, k1), "cqt": (128, k2)}
    """

    def __init__(
        self, kinds: str | Sequence[str] = KINDS, config: FeatureConfig | None = None
    ) -> None:
        self.kinds = parse_kinds(kinds)
        self.config = config or FeatureConfig()
        cfg = self.config
        wanted = set(self.kinds)
        self._stft = _STFTFrames(cfg) if wanted & STFT_KINDS else None
        self._linear = _Bank(filterbanks.linear_bands(cfg)) if "stft" in wanted else None
        self._mel = _Bank(filterbanks.mel_bank(cfg)) if wanted & {"logmel", "mfcc"} else None
        self._deltas = _Deltas() if "mfcc" in wanted else None
        self._dct = dct_matrix(cfg.n_bins, cfg.n_mfcc) if "mfcc" in wanted else None
        self._gammatone = _Bank(filterbanks.gammatone_bank(cfg)) if "gam" in wanted else None
        self._cqt = CQTStream(cfg) if "cqt" in wanted else None
        self.samples_in = 0

    def _cepstra(self, logmel: np.ndarray) -> np.ndarray:
        """First ``n_mfcc`` orthonormal DCT-II coefficients of each log-Mel frame (eq. 8).

        ``logmel`` is ``(k, n_bins)``; the result ``(n_mfcc, k)``. A stack of per-frame
        vector-matrix products, not one matrix-matrix product: each frame's cepstrum is
        then bit-identical however many frames arrive together.
        """
        return np.matmul(logmel[:, None, :], self._dct)[:, 0, :].T

    @property
    def timings(self) -> dict[str, FrameTiming]:
        """Lookahead and context of each requested spectrogram."""
        return {kind: timing(kind, self.config) for kind in self.kinds}

    def push(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """Feed a block of mono samples at ``config.sample_rate``.

        Parameters
        ----------
        samples : numpy.ndarray
            1-D block of any length (zero included).

        Returns
        -------
        dict of str to numpy.ndarray
            For each requested spectrogram, a ``(n_bins, k)`` float32 array of the ``k``
            frames completed by this block (``k`` may be 0), in request order.
        """
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D block of mono samples, got shape {x.shape}")
        if x.size <= PIECE_SAMPLES:
            return self._push_piece(x)
        pieces = [
            self._push_piece(x[i : i + PIECE_SAMPLES]) for i in range(0, x.size, PIECE_SAMPLES)
        ]
        return {kind: np.concatenate([p[kind] for p in pieces], axis=1) for kind in self.kinds}

    def _push_piece(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`push` for at most :data:`PIECE_SAMPLES` float64 samples."""
        self.samples_in += x.size
        amin = self.config.amin
        out: dict[str, np.ndarray] = {}
        if self._stft is not None:
            power = self._stft.push(x)  # (k, n_fft // 2 + 1), frames as rows
            if self._linear is not None:
                out["stft"] = power_to_db(self._linear(power), amin).T
            if self._mel is not None:
                logmel = power_to_db(self._mel(power), amin)
                out["logmel"] = logmel.T
                if self._deltas is not None:
                    out["mfcc"] = self._deltas.push(self._cepstra(logmel))
            if self._gammatone is not None:
                magnitude = self._gammatone(np.sqrt(power))
                out["gam"] = power_to_db(magnitude.astype(np.float64) ** 2, amin).T
        if self._cqt is not None:
            out["cqt"] = power_to_db(self._cqt.push(x) ** 2, amin)
        return {kind: np.ascontiguousarray(out[kind], dtype=np.float32) for kind in self.kinds}


def compute_many(
    signal: np.ndarray, kinds: str | Sequence[str], config: FeatureConfig | None = None
) -> dict[str, np.ndarray]:
    """Batch form: every requested spectrogram of a whole signal (one push of it all)."""
    return FeatureStream(kinds, config).push(signal)


def compute(signal: np.ndarray, kind: str, config: FeatureConfig | None = None) -> np.ndarray:
    """Batch form of one spectrogram.

    Parameters
    ----------
    signal : numpy.ndarray
        1-D mono samples at ``config.sample_rate``.
    kind : str
        ``"stft"``, ``"logmel"``, ``"mfcc"``, ``"cqt"`` or ``"gam"``.
    config : FeatureConfig, optional
        Settings; the paper's defaults when omitted.

    Returns
    -------
    numpy.ndarray
        ``(n_bins, T)`` float32, ``T = timing(kind, config).frames_for(len(signal))``.
    """
    return compute_many(signal, [kind], config)[kind]
