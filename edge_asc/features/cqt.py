"""Constant-Q transform computed incrementally on a multi-rate filter chain (paper eqs. 10-14).

Each CQT bin k is the paper's direct transform: the signal around the frame centre times a
Hamming window (alpha = 0.54) of N_k = Q * fs / f_k samples and a complex exponential at
f_k, divided by N_k. Computed at the full sample rate the low bins cost tens of thousands
of multiplications per frame. Here the signal instead runs through a chain of half-band
decimators (each a linear-phase Kaiser FIR followed by keeping every other sample), and
each bin is evaluated at the lowest rate whose pass band still holds it, where its window
has only ~100 taps. Frames sit on the same grid as the STFT's (frame t centred on sample
t * hop_length, zeros before the first sample), and the filter delays are folded into the
kernels' sub-sample centres, so every level lines up exactly.

The chain is causal and keeps its own state, so pushing a signal in blocks of any size
gives the frames that one push of the whole signal gives, bit for bit: every output sample
and every frame is computed by the same call on the same numbers whatever the block size
(a dot product per decimated sample, a matrix-vector product per frame; a matrix-matrix
product would round differently depending on how many frames arrived together).

Cost: a half-band filter has every other tap zero, so each stage computes only the samples
it keeps, from the non-zero taps (a quarter of the multiplications of filtering at the full
rate and dropping half). Everything is numpy; scipy.signal, which designed and ran these
filters before, costs the runtime a second to import and is no longer needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edge_asc.features.config import FeatureConfig

MAX_DECIMATION_STAGES = 10
STOPBAND_DB = 80.0
PASSBAND_FRACTION = 0.75  # of the decimated Nyquist: bins above it stay at a higher rate


@dataclass(frozen=True)
class CQTLevel:
    """The bins evaluated at one rate of the chain, as one kernel matrix."""

    stage: int  # the rate is sample_rate / 2**stage
    bins: np.ndarray  # indices of the CQT bins computed here
    kernel: np.ndarray  # (2 * len(bins), width): real parts stacked over imaginary parts
    first_offset: int  # first decimated index of frame t, relative to t * hop / 2**stage


@dataclass(frozen=True)
class CQTPlan:
    """Everything the CQT of one configuration needs, built once and shared."""

    half_band: np.ndarray  # decimation FIR taps
    n_stages: int
    levels: tuple[CQTLevel, ...]
    lookahead: int  # samples after frame t's centre needed before it is complete
    context: int  # input samples one frame depends on


def _half_band_filter() -> np.ndarray:
    """Linear-phase low-pass for 2x decimation: flat to 0.75, stopped from 1.25 x new Nyquist.

    Anything that aliases lands above 0.75 x the new Nyquist, where no bin is evaluated.

    The design is ``scipy.signal.firwin(numtaps, 0.5, window=("kaiser", beta))`` with
    ``kaiserord(80 dB, 0.25)``, written out with numpy: a windowed sinc scaled to unit gain
    at DC. The taps at an even, non-zero distance from the centre are zeros of the sinc;
    they are set to exactly zero (firwin leaves ~1e-19 there), which the decimator relies on.
    """
    transition = 0.25  # of Nyquist
    beta = 0.1102 * (STOPBAND_DB - 8.7)  # Kaiser's formula for attenuations above 50 dB
    numtaps = math.ceil((STOPBAND_DB - 7.95) / 2.285 / (np.pi * transition) + 1)
    numtaps += 1 - numtaps % 2  # odd: integer group delay
    offsets = np.arange(numtaps) - (numtaps - 1) / 2
    taps = 0.5 * np.sinc(0.5 * offsets) * np.kaiser(numtaps, beta)
    taps[(offsets != 0) & (offsets % 2 == 0)] = 0.0
    return taps / taps.sum()


def _max_stages(config: FeatureConfig) -> int:
    """Deepest decimation whose rate still has a whole number of samples per hop."""
    hop, stages = config.hop_length, 0
    while hop % 2 == 0 and stages < MAX_DECIMATION_STAGES:
        hop //= 2
        stages += 1
    return stages


@lru_cache(maxsize=16)
def cqt_plan(config: FeatureConfig) -> CQTPlan:
    """Design the decimation chain and every bin's kernel for ``config``."""
    taps = _half_band_filter()
    half_delay = (taps.size - 1) // 2
    q = config.cqt_q
    freqs = np.array([config.cqt_frequency(k) for k in range(config.n_bins)])
    upper_edges = freqs * (1.0 + 2.0 / q)  # Hamming main lobe reaches f_k (1 +- 2 / Q)
    max_stages = _max_stages(config)

    # Each bin goes to the lowest rate whose pass band holds its main lobe.
    stage_of_bin = np.zeros(config.n_bins, dtype=int)
    for stage in range(1, max_stages + 1):
        passband = PASSBAND_FRACTION * config.sample_rate / 2**stage / 2
        stage_of_bin[upper_edges <= passband] = stage
    n_stages = int(stage_of_bin.max())

    levels: list[CQTLevel] = []
    lookahead, context = 0, 0
    delay = 0.0  # group delay of the chain up to this stage, in input samples
    span = 0  # input samples the chain's FIRs reach back, up to this stage
    for stage in range(n_stages + 1):
        if stage > 0:
            delay += half_delay * 2 ** (stage - 1)
            span += (taps.size - 1) * 2 ** (stage - 1)
        bins = np.flatnonzero(stage_of_bin == stage)
        if bins.size == 0:
            continue
        rate = config.sample_rate / 2**stage
        centre = delay / 2**stage  # frame t's centre, in this rate's samples, minus t * hop
        lengths = q * rate / freqs[bins]
        first = int(np.ceil(centre - lengths.max() / 2))
        last = int(np.floor(centre + lengths.max() / 2))
        offsets = np.arange(first, last + 1) - centre
        phase = (offsets[None, :] / lengths[:, None]) + 0.5
        window = np.where(
            (phase >= 0.0) & (phase <= 1.0), 0.54 - 0.46 * np.cos(2.0 * np.pi * phase), 0.0
        )
        carrier = np.exp(-2j * np.pi * freqs[bins, None] * offsets[None, :] / rate)
        kernel = window * carrier / lengths[:, None]
        stacked = np.ascontiguousarray(np.vstack([kernel.real, kernel.imag]))
        stacked.setflags(write=False)
        levels.append(CQTLevel(stage=stage, bins=bins, kernel=stacked, first_offset=first))
        lookahead = max(lookahead, last * 2**stage + 1)
        context = max(context, (last - first) * 2**stage + span + 1)
    return CQTPlan(
        half_band=taps,
        n_stages=n_stages,
        levels=tuple(levels),
        lookahead=lookahead,
        context=context,
    )


class _HalfBand:
    """The decimating half-band FIR, evaluated only at the even input indices it keeps.

    Output ``m`` is ``sum_j h[j] x[2m - j]``. Only the centre tap and the taps at an odd
    distance from it are non-zero, and those all fall on samples of one parity, so each
    output is one dot product over every other sample plus the centre term.
    """

    def __init__(self, taps: np.ndarray) -> None:
        centre = (taps.size - 1) // 2
        dense = np.arange((centre + 1) % 2, taps.size, 2)  # odd distance from the centre
        self.history = taps.size - 1  # past samples each output needs
        self._centre = centre
        self._centre_tap = float(taps[centre])
        self._reach = int(dense[-1])  # the oldest sample a dense tap reaches back to
        self._dense = np.ascontiguousarray(taps[dense][::-1])  # in correlation order

    def outputs(self, buf: np.ndarray, newest: int, count: int) -> np.ndarray:
        """``count`` outputs whose newest inputs are ``buf[newest]``, ``buf[newest + 2]``, ...

        ``buf`` must hold ``history`` samples before ``buf[newest]``.
        """
        first = newest - self._reach
        stride = buf[first : first + 2 * (count + self._dense.size - 1) - 1 : 2]
        out = np.correlate(stride, self._dense, "valid")  # one dot product per output
        centre = newest - self._centre
        out += self._centre_tap * buf[centre : centre + 2 * count - 1 : 2]
        return out


class _Stage:
    """The samples at one rate of the chain that are still needed, and their bookkeeping.

    ``buf[0]`` is the sample of index ``start`` at this rate (negative indices are the
    zeros before the signal). Frame ``t`` of the level at this rate, if any, covers indices
    ``t * hop + first_offset`` to ``+ width``; ``done`` frames have been computed.
    """

    def __init__(self, level: CQTLevel | None, hop: int, history: int) -> None:
        self.level = level
        self.hop = hop
        self.width = level.kernel.shape[1] if level is not None else 0
        self.first_offset = level.first_offset if level is not None else 0
        self.history = history  # samples the next stage's filter needs (0 for the last)
        self.start = min(self.first_offset, -history)
        self.buf = np.zeros(-self.start)
        self.done = 0


class CQTStream:
    """Streaming constant-Q magnitudes: push samples, get the frames that became complete.

    Each rate of the chain keeps one buffer of the samples still needed, both by its own
    frames and by the next stage's filter; a push appends to it, computes the frames and
    the decimated samples it completes, and drops what is no longer needed.

    Parameters
    ----------
    config : FeatureConfig
        Sample rate, hop and the ``cqt_*`` settings.
    """

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self.plan = cqt_plan(config)
        self._filter = _HalfBand(self.plan.half_band)
        level_at = {level.stage: level for level in self.plan.levels}
        n = self.plan.n_stages
        self._stages = [
            _Stage(
                level_at.get(stage),
                config.hop_length // 2**stage,
                self._filter.history if stage < n else 0,
            )
            for stage in range(n + 1)
        ]
        self._emitted = 0
        self._pending = np.zeros((0, config.n_bins))  # row r: frame emitted + r, all levels

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the ``(n_bins, k)`` float64 magnitudes of new frames."""
        new = np.asarray(samples, dtype=np.float64)
        results = []
        for stage in self._stages:
            prev_end = stage.start + stage.buf.size
            buf = np.concatenate([stage.buf, new]) if new.size else stage.buf
            end = prev_end + new.size
            if stage.level is not None:
                results.append((stage.level, stage.done, self._frames(stage, buf, end)))
            if stage.history:  # decimate: outputs m with 2m in [prev_end, end)
                first = (prev_end + 1) // 2
                count = (end + 1) // 2 - first
                new = (
                    self._filter.outputs(buf, 2 * first - stage.start, count)
                    if count > 0
                    else np.empty(0)
                )
            keep = end - stage.history
            if stage.level is not None:
                keep = min(keep, stage.done * stage.hop + stage.first_offset)
            stage.buf = buf[keep - stage.start :]
            stage.start = keep
        return self._emit(results)

    @staticmethod
    def _frames(stage: _Stage, buf: np.ndarray, end: int) -> np.ndarray:
        """Magnitudes ``(k, bins)`` of the level's frames completed by samples up to ``end``."""
        last = (end - stage.first_offset - stage.width) // stage.hop  # last complete frame
        count = last - stage.done + 1
        if count <= 0:
            return np.empty((0, stage.level.bins.size))
        offset = stage.done * stage.hop + stage.first_offset - stage.start
        step = buf.strides[0]
        frames = np.ndarray(
            (count, stage.width, 1), np.float64, buf, offset * step, (stage.hop * step, step, step)
        )
        stage.done += count
        # one fixed-shape matrix-vector product per frame, all in one call
        parts = np.matmul(stage.level.kernel, frames)[:, :, 0]
        half = stage.level.bins.size
        return np.hypot(parts[:, :half], parts[:, half:])

    def _emit(self, results: list[tuple[CQTLevel, int, np.ndarray]]) -> np.ndarray:
        """Place each level's new frames, and hand out the frames that every level has."""
        ready = min(stage.done for stage in self._stages if stage.level is not None)
        rows = max(stage.done for stage in self._stages) - self._emitted
        if rows > self._pending.shape[0]:
            grown = np.empty((rows, self.config.n_bins))
            grown[: self._pending.shape[0]] = self._pending
            self._pending = grown
        for level, done_before, magnitudes in results:
            if magnitudes.shape[0]:
                row = done_before - self._emitted
                self._pending[row : row + magnitudes.shape[0], level.bins] = magnitudes
        count = ready - self._emitted
        out = self._pending[:count].T.copy()
        if count:
            self._pending[: rows - count] = self._pending[count:rows]
            self._emitted = ready
        return out
