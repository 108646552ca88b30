"""Weight matrices that turn one STFT frame into 128 bins (paper eqs. 6, 8 and 17).

Each function returns a dense float64 matrix built once per configuration; applying it is
a matrix product, which is what makes the STFT-based spectrograms cheap to stream.

Everything here is plain numpy on purpose: the on-device runtime builds these matrices when
it starts, and importing librosa (numba, scikit-learn, ...) or scipy.signal for a few
formulas would cost it seconds and tens of megabytes. The tests check each matrix against
the library it was first taken from (librosa's Mel filters, the ``Gammatone`` package's
FFT weights), which stay dependencies of training only.
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

    The same matrix as ``librosa.filters.mel(..., htk=True)`` (Slaney area normalisation),
    built with numpy alone so the runtime never imports librosa.

    Returns
    -------
    numpy.ndarray
        ``(n_bins, n_fft // 2 + 1)`` Slaney-normalised triangular filters.
    """

    def hz_to_mel(hz: float) -> float:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    mels = np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.band_fmax), config.n_bins + 2)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)  # band edges and centres, in Hz
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_frequencies(config)[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area (Slaney)
    return _frozen(weights)


@lru_cache(maxsize=16)
def gammatone_bank(config: FeatureConfig) -> np.ndarray:
    """``n_bins`` ERB-spaced gammatone weights on STFT magnitudes (Ellis' gammatonegram).

    A numpy port of the ``Gammatone`` package's ``fft_weights`` (itself a port of Ellis'
    fft2gammatonemx), so the runtime needs neither that package nor the scipy.signal it
    imports: 1-ERB-wide 4th-order filters (Glasberg and Moore's ERB, Slaney's four
    second-order sections) from fmin to fmax, ordered low to high, scaled by ``1 / n_fft``
    as in Ellis' code.

    Returns
    -------
    numpy.ndarray
        ``(n_bins, n_fft // 2 + 1)`` non-negative matrix.
    """
    fs, n_fft = float(config.sample_rate), config.n_fft
    ear_q, min_bw = 9.26449, 24.7  # Glasberg and Moore
    # ERB-spaced centre frequencies, from fmax down to fmin; reversed to run low to high.
    fraction = np.arange(1, config.n_bins + 1) / config.n_bins
    top = config.band_fmax + ear_q * min_bw
    centres = (
        -ear_q * min_bw
        + np.exp(fraction * (-np.log(top) + np.log(config.fmin + ear_q * min_bw))) * top
    )
    centres = centres[::-1]

    # Slaney's make_erb_filters, width 1 ERB.
    t = 1.0 / fs
    b = 1.019 * 2.0 * np.pi * (centres / ear_q + min_bw)
    arg = 2.0 * centres * np.pi * t
    vec = np.exp(2j * arg)
    rt_pos, rt_neg = np.sqrt(3.0 + 2.0**1.5), np.sqrt(3.0 - 2.0**1.5)
    common = -t * np.exp(-(b * t))
    ks = [
        np.cos(arg) + rt_pos * np.sin(arg),
        np.cos(arg) - rt_pos * np.sin(arg),
        np.cos(arg) + rt_neg * np.sin(arg),
        np.cos(arg) - rt_neg * np.sin(arg),
    ]
    gain_arg = np.exp(1j * arg - b * t)
    gain = np.abs(
        (vec - gain_arg * ks[0])
        * (vec - gain_arg * ks[1])
        * (vec - gain_arg * ks[2])
        * (vec - gain_arg * ks[3])
        * (t * np.exp(b * t) / (-1.0 / np.exp(b * t) + 1.0 + vec * (1.0 - np.exp(b * t)))) ** 4
    )

    # Ellis' fft2gammatonemx: the filters' magnitude responses on the FFT's unit circle.
    ucirc = np.exp(1j * 2.0 * np.pi * np.arange(n_fft // 2 + 1) / n_fft)[None, :]
    pole = (np.sqrt(np.exp(-2.0 * b * t)) * np.exp(1j * 2.0 * np.pi * centres / fs))[:, None]
    weights = (
        np.abs(ucirc + (common * ks[0])[:, None] * fs)
        * np.abs(ucirc + (common * ks[1])[:, None] * fs)
        * np.abs(ucirc + (common * ks[2])[:, None] * fs)
        * np.abs(ucirc + (common * ks[3])[:, None] * fs)
        * np.abs(fs * (pole - ucirc) * (pole.conj() - ucirc)) ** -4
        / gain[:, None]
    )
    return _frozen(weights / n_fft)
