"""Weight matrices that turn one STFT frame into 128 bins (paper eqs. 6, 8 and 17).

Each function returns a dense float64 matrix built once per configuration; applying it is
a matrix product, which is what makes the STFT-based spectrograms cheap to stream.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edge_asc.features.config import FeatureConfig


def _frozen(matrix: np.ndarray) -> np.ndarray:
    """Contiguous read-only copy, so a cached matrix cannot be altered by a caller."""
    out = np.ascontiguousarray(matrix, dtype=np.float64).copy()
    out.setflags(write=False)
    return out


def fft_frequencies(config: FeatureConfig) -> np.ndarray:
    """Centre frequencies (Hz) of the ``n_fft // 2 + 1`` STFT bins."""
    return np.arange(config.n_fft // 2 + 1) * (config.sample_rate / config.n_fft)


@lru_cache(maxsize=16)
def linear_bands(config: FeatureConfig) -> np.ndarray:
    """Average the STFT's power into ``n_bins`` equal-width bands from fmin to fmax.

    The paper rescales its 2048-point STFT to 128 bins; averaging over equal linear bands
    keeps the STFT's linear frequency axis (unlike Mel or Gammatone). Each FFT bin is
    weighted by the fraction of its width that falls inside a band, so bands narrower
    than an FFT bin still get a value.

    Returns
    -------
    numpy.ndarray
        ``(n_bins, n_fft // 2 + 1)`` matrix whose rows sum to one.
    """
    freqs = fft_frequencies(config)
    df = config.sample_rate / config.n_fft
    lo_bin, hi_bin = freqs - df / 2, freqs + df / 2
    edges = np.linspace(config.fmin, config.band_fmax, config.n_bins + 1)
    overlap = np.minimum(hi_bin[None, :], edges[1:, None]) - np.maximum(
        lo_bin[None, :], edges[:-1, None]
    )
    weights = np.clip(overlap, 0.0, None)
    return _frozen(weights / weights.sum(axis=1, keepdims=True))


@lru_cache(maxsize=16)
def mel_bank(config: FeatureConfig) -> np.ndarray:
    """``n_bins`` Mel filters on the paper's warping 2595 log10(1 + f / 700) (HTK).

    Returns
    -------
    numpy.ndarray
        ``(n_bins, n_fft // 2 + 1)`` Slaney-normalised triangular filters.
    """
    import librosa  # deferred: librosa's import is slow and only filter design needs it

    bank = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_bins,
        fmin=config.fmin,
        fmax=config.band_fmax,
        htk=True,
        dtype=np.float64,
    )
    return _frozen(bank)


@lru_cache(maxsize=16)
def gammatone_bank(config: FeatureConfig) -> np.ndarray:
    """``n_bins`` ERB-spaced gammatone weights on STFT magnitudes (Ellis' gammatonegram).

    Uses the ``Gammatone`` package's ``fft_weights`` (a port of Ellis' fft2gammatonemx),
    with 1-ERB-wide 4th-order filters from fmin to fmax, ordered low to high, scaled by
    ``1 / n_fft`` as in Ellis' code.

    Returns
    -------
    numpy.ndarray
        ``(n_bins, n_fft // 2 + 1)`` non-negative matrix.
    """
    from gammatone.fftweight import fft_weights

    weights, _ = fft_weights(
        config.n_fft,
        config.sample_rate,
        config.n_bins,
        1.0,
        config.fmin,
        config.band_fmax,
        config.n_fft // 2 + 1,
    )
    return _frozen(np.asarray(weights, dtype=np.float64) / config.n_fft)
