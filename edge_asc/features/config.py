"""The one feature configuration shared by training, export and the runtime.

Every spectrogram the project computes is fully determined by a :class:`FeatureConfig`.
Training stores it with the model, the runtime rebuilds exactly the same front-end from it,
so a spectrogram computed offline is the one computed on a live microphone.

Defaults follow Ngo et al. (2022), section III-IV: 44.1 kHz, a 2048-point STFT with a
1290-sample Hamming window, hop 256, 128 bins for every spectrogram, fmin 10 Hz.

The constant-Q transform is the one place the default departs from the paper. The paper's
literal setting (fmin 10 Hz, 24 bins per octave, 128 bins) spans only 10-392 Hz, and its
lowest bin needs a ~3.4 s analysis window (Q * fs / fmin samples), longer than the ~3 s
streaming window. The default instead starts at 20 Hz (the bottom of the audible band) and
spreads the 128 bins up to 90 % of Nyquist by choosing the smallest whole number of bins
per octave that fits: 13 bins/octave at 44.1 kHz (20 Hz - 17.4 kHz, lowest window 0.91 s),
15 at 22.05 kHz (20 Hz - 7.1 kHz). The paper's setting stays available as
:meth:`FeatureConfig.paper`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from edge_asc.errors import EdgeAscError

KINDS: tuple[str, ...] = ("stft", "logmel", "mfcc", "cqt", "gam")
"""The five spectrograms of the paper, in its order."""

STFT_KINDS: frozenset[str] = frozenset({"stft", "logmel", "mfcc", "gam"})
"""Spectrograms computed from the shared STFT (the CQT has its own filters)."""


MAX_SAMPLE_RATE = 384_000
"""Highest analysis sample rate, in Hz."""

MAX_N_FFT = 2**16
"""Largest FFT size (a 2**28-point FFT would need over 100 GiB of filters)."""

MAX_FRAME_RATE = 1000.0
"""Most spectrogram frames per second of audio (a hop of 1 sample would fill any memory)."""

MAX_N_BINS = 1024
"""Most frequency bins of a spectrogram."""

MAX_CQT_WINDOW_S = 10.0
"""Longest constant-Q analysis window, in seconds (Q / cqt_fmin)."""

_INT_FIELDS = frozenset({"sample_rate", "n_fft", "win_length", "hop_length", "n_bins"})
_OPTIONAL_FIELDS = frozenset({"fmax", "cqt_bins_per_octave"})


class FeatureConfigError(EdgeAscError, ValueError):
    """A feature configuration that cannot produce valid spectrograms."""


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of all five spectrograms.

    Parameters
    ----------
    sample_rate : int
        Rate the audio is resampled to before analysis, in Hz.
    n_fft : int
        FFT size of the shared STFT (the paper's 2048 central frequencies).
    win_length : int
        Hamming window length, centred in the ``n_fft`` frame (the paper's 1290).
    hop_length : int
        Samples between frames, for every spectrogram. Must be divisible by the CQT's
        deepest decimation factor (a power of two), which 256 is.
    n_bins : int
        Frequency bins of every spectrogram (128 in the paper).
    fmin, fmax : float
        Frequency range of the STFT rescaling, Mel and Gammatone banks. ``fmax=None``
        means Nyquist.
    amin : float
        Floor applied to power before the logarithm, so silence maps to a finite value.
    cqt_fmin : float
        Centre frequency of the lowest constant-Q bin.
    cqt_bins_per_octave : int or None
        Constant-Q resolution. ``None`` picks the smallest whole number that fits the
        128 bins below 90 % of Nyquist (see the module docstring).
    cqt_filter_scale : float
        Multiplies Q (and so every constant-Q window length); 1.0 is the textbook CQT.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    win_length: int = 1290
    hop_length: int = 256
    n_bins: int = 128
    fmin: float = 10.0
    fmax: float | None = None
    amin: float = 1e-10
    cqt_fmin: float = 20.0
    cqt_bins_per_octave: int | None = None
    cqt_filter_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.sample_rate < 1000:
            raise FeatureConfigError(f"sample rate {self.sample_rate} Hz is too low")
        if self.sample_rate > MAX_SAMPLE_RATE:
            raise FeatureConfigError(
                f"sample rate {self.sample_rate} Hz is above the limit of {MAX_SAMPLE_RATE} Hz"
            )
        if not 16 <= self.n_fft <= MAX_N_FFT or self.n_fft & (self.n_fft - 1):
            raise FeatureConfigError(
                f"n_fft must be a power of two in 16..{MAX_N_FFT}, got {self.n_fft}"
            )
        if not 0 < self.win_length <= self.n_fft:
            raise FeatureConfigError("win_length must be in 1..n_fft")
        if not 1 <= self.hop_length <= self.n_fft:
            raise FeatureConfigError(f"hop_length must be in 1..n_fft, got {self.hop_length}")
        if self.sample_rate / self.hop_length > MAX_FRAME_RATE:
            raise FeatureConfigError(
                f"hop_length {self.hop_length} gives {self.sample_rate / self.hop_length:.0f} "
                f"frames per second (at most {MAX_FRAME_RATE:.0f})"
            )
        if self.n_bins < 2 or self.n_bins % 2 or self.n_bins > MAX_N_BINS:
            raise FeatureConfigError(
                f"n_bins must be an even number in 2..{MAX_N_BINS} (MFCC halves it)"
            )
        if not 0 < self.amin < 1:
            raise FeatureConfigError(f"amin must be in (0, 1), got {self.amin}")
        if self.cqt_bins_per_octave is not None and not 1 <= self.cqt_bins_per_octave <= 96:
            raise FeatureConfigError("cqt_bins_per_octave must be in 1..96")
        if not 0 < self.cqt_filter_scale <= 4:
            raise FeatureConfigError("cqt_filter_scale must be in (0, 4]")
        if not 0 <= self.fmin < self.band_fmax:
            raise FeatureConfigError(f"need 0 <= fmin < fmax <= Nyquist, got fmin={self.fmin}")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise FeatureConfigError(f"fmax {self.fmax} Hz is above Nyquist")
        if self.cqt_fmin <= 0:
            raise FeatureConfigError("cqt_fmin must be positive")
        top = self.cqt_frequency(self.n_bins - 1)
        if top >= self.sample_rate / 2:
            raise FeatureConfigError(
                f"the CQT's top bin ({top:.0f} Hz) is above Nyquist "
                f"({self.sample_rate / 2:.0f} Hz): lower cqt_fmin or raise cqt_bins_per_octave"
            )
        if self.cqt_q / self.cqt_fmin > MAX_CQT_WINDOW_S:
            raise FeatureConfigError(
                f"the CQT's lowest bin needs a {self.cqt_q / self.cqt_fmin:.1f} s window "
                f"(at most {MAX_CQT_WINDOW_S:.0f} s): raise cqt_fmin"
            )

    @classmethod
    def paper(cls, **overrides: Any) -> FeatureConfig:
        """The paper's literal setting, including its 10 Hz / 24 bins-per-octave CQT."""
        return cls(**{"cqt_fmin": 10.0, "cqt_bins_per_octave": 24, **overrides})

    @property
    def band_fmax(self) -> float:
        """Upper edge of the STFT, Mel and Gammatone banks (Nyquist unless set)."""
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def n_mfcc(self) -> int:
        """DCT coefficients kept; the MFCC spectrogram stacks them with their deltas."""
        return self.n_bins // 2

    @property
    def bins_per_octave(self) -> int:
        """The CQT's bins per octave, resolving the automatic choice."""
        if self.cqt_bins_per_octave is not None:
            return int(self.cqt_bins_per_octave)
        octaves = math.log2(0.9 * (self.sample_rate / 2) / self.cqt_fmin)
        if octaves <= 0:
            raise FeatureConfigError("cqt_fmin is above 90 % of Nyquist")
        return max(1, math.ceil((self.n_bins - 1) / octaves))

    @property
    def cqt_q(self) -> float:
        """The constant quality factor of the CQT (paper eq. 11)."""
        return self.cqt_filter_scale / (2.0 ** (1.0 / self.bins_per_octave) - 1.0)

    def cqt_frequency(self, k: int) -> float:
        """Centre frequency of CQT bin ``k`` (paper eq. 10)."""
        return self.cqt_fmin * 2.0 ** (k / self.bins_per_octave)

    def resolved(self) -> FeatureConfig:
        """A copy with every automatic choice made explicit (what a model bundle stores)."""
        return dataclasses.replace(self, cqt_bins_per_octave=self.bins_per_octave)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of the resolved settings."""
        return dataclasses.asdict(self.resolved())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """Rebuild a configuration from untrusted data (a bundle's manifest, a run's spec).

        Unknown keys are an error, not silently dropped; every value is type-checked before
        any range check, so a wrong type is a one-line error, never a ``TypeError``.

        Raises
        ------
        FeatureConfigError
            One line, for an unknown key, a value of the wrong type or out of range.
        """
        if not isinstance(data, dict):
            raise FeatureConfigError("feature settings must be an object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names, key=str)
        if unknown:
            raise FeatureConfigError(f"unknown feature settings: {', '.join(map(str, unknown))}")
        for key, value in data.items():
            if value is None and key in _OPTIONAL_FIELDS:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FeatureConfigError(f"{key} must be a number, got {_short(value)}")
            if (key in _INT_FIELDS or key == "cqt_bins_per_octave") and not isinstance(value, int):
                raise FeatureConfigError(f"{key} must be an integer, got {_short(value)}")
            if not math.isfinite(value):
                raise FeatureConfigError(f"{key} must be finite, got {value}")
        return cls(**data)


def _short(value: Any) -> str:
    """``repr`` of an untrusted value, cut to one short line."""
    text = repr(value).replace("\n", "\\n")
    return text if len(text) <= 40 else text[:37] + "..."
