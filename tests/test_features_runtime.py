"""The front-end as the runtime uses it: numpy only, and unchanged by its rewrite for speed.

The filter banks, window, decimation filter and DCT used to come from librosa, Gammatone
and scipy; they are now written with numpy so that the runtime imports none of those.
These tests pin each numpy version to the library it replaces, check in a fresh interpreter
that streaming all five spectrograms loads none of the heavy modules, and compare today's
frames with frames computed by the front-end before the rewrite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
from gammatone.fftweight import fft_weights

from edge_asc.audio import load_audio
from edge_asc.features import KINDS, FeatureConfig, compute_many, filterbanks
from edge_asc.features.cqt import _half_band_filter, _HalfBand
from edge_asc.features.spectrograms import dct_matrix, hamming

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [
    FeatureConfig(sample_rate=22050),
    FeatureConfig(),
    FeatureConfig(sample_rate=16000, n_fft=512, win_length=400, n_bins=64, fmin=50.0, fmax=7000.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["22k", "44k", "16k-small"])
def test_mel_bank_is_librosas(config):
    ours = filterbanks.mel_bank(config)
    reference = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_bins,
        fmin=config.fmin,
        fmax=config.band_fmax,
        htk=True,
        dtype=np.float64,
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("config", CONFIGS, ids=["22k", "44k", "16k-small"])
def test_gammatone_bank_is_the_gammatone_packages(config):
    ours = filterbanks.gammatone_bank(config)
    weights, _ = fft_weights(
        config.n_fft,
        config.sample_rate,
        config.n_bins,
        1.0,
        config.fmin,
        config.band_fmax,
        config.n_fft // 2 + 1,
    )
    np.testing.assert_allclose(ours, weights / config.n_fft, rtol=1e-12, atol=0)


def test_hamming_window_is_scipys():
    for length in (1290, 400, 1):
        expected = scipy.signal.get_window("hamming", length, fftbins=True)
        np.testing.assert_allclose(hamming(length), expected, rtol=0, atol=1e-15)


def test_half_band_filter_is_scipys_kaiser_design():
    numtaps, beta = scipy.signal.kaiserord(80.0, 0.25)
    numtaps += 1 - numtaps % 2
    expected = scipy.signal.firwin(numtaps, 0.5, window=("kaiser", beta))
    ours = _half_band_filter()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-15)
    # a half-band filter: every tap at an even, non-zero distance from the centre is zero
    centre = ours.size // 2
    assert np.all(ours[centre % 2 :: 2][np.arange(centre % 2, ours.size, 2) != centre] == 0)


def test_decimation_is_filtering_then_keeping_even_samples(real_clip):
    signal, _ = real_clip
    signal = signal[:20000]
    taps = _half_band_filter()
    expected = scipy.signal.lfilter(taps, 1.0, signal)[::2]
    half_band = _HalfBand(taps)
    padded = np.concatenate([np.zeros(half_band.history), signal])  # zeros before the signal
    got = half_band.outputs(padded, half_band.history, expected.size)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_dct_matrix_is_scipys_orthonormal_dct_ii():
    x = np.random.default_rng(5).normal(size=(7, 128)) * 30
    np.testing.assert_allclose(
        x @ dct_matrix(128, 64), scipy.fft.dct(x, type=2, norm="ortho", axis=1)[:, :64], atol=1e-12
    )


_RUNTIME_PROBE = """
import json, sys
import numpy as np
from edge_asc.features import KINDS, FeatureConfig, FeatureStream
stream = FeatureStream(KINDS, FeatureConfig(sample_rate=22050))
for block in np.array_split(np.random.default_rng(0).normal(size=3 * 22050), 40):
    stream.push(block)
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = ("librosa", "numba", "matplotlib", "sklearn", "scipy.signal", "scipy.stats", "gammatone")


def test_streaming_all_five_loads_no_heavy_module():
    result = subprocess.run(
        [sys.executable, "-c", _RUNTIME_PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    loaded = set(json.loads(result.stdout))
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, f"the streaming front-end loaded {heavy}"
    # numpy's FFT, not scipy's: scipy.fft alone costs ~25 MB and most of a second
    assert "scipy" not in loaded


REFERENCE = REPO / "tests" / "data" / "features_before.npz"
REFERENCE_CLIPS = ("1-116765-A-41", "1-17367-A-10")  # chainsaw, rain (examples/)
TOLERANCE_DB = 1e-3


@pytest.mark.parametrize("clip", REFERENCE_CLIPS)
def test_frames_match_the_front_end_before_its_rewrite(clip):
    """Every 16th frame of two example clips, as computed at commit 189e18d.

    That front-end used librosa's Mel bank, the Gammatone package's weights, scipy's
    window, DCT, FIR design and lfilter, float64 filter banks and one matrix product per
    push. The rewrite rounds differently (float32 filter banks, a polyphase decimator);
    every value must stay within TOLERANCE_DB, far below anything a model can see.
    """
    reference = np.load(REFERENCE)
    signal = load_audio(REPO / "examples" / f"{clip}.flac", 22050)
    frames = compute_many(signal, KINDS, FeatureConfig(sample_rate=22050))
    for kind in KINDS:
        expected = reference[f"{clip}/{kind}"]
        got = frames[kind][:, ::16]
        assert got.shape == expected.shape, kind
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE_DB, err_msg=kind)
