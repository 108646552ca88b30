"""The five spectrograms: streaming equals batch, stated latencies hold, maths matches refs."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import soxr
from gammatone.fftweight import fft_weights

from edge_asc.features import (
    KINDS,
    FeatureConfig,
    FeatureConfigError,
    FeatureStream,
    compute,
    compute_many,
    parse_kinds,
    timing,
)
from edge_asc.features import spectrograms as spectrograms_module
from edge_asc.features.filterbanks import linear_bands

NATIVE = FeatureConfig(sample_rate=22050)  # the shared clips' own rate: no resampling


def _stream(signal: np.ndarray, kinds, config: FeatureConfig, sizes) -> dict[str, np.ndarray]:
    """Push ``signal`` through a FeatureStream in blocks of the given sizes (cycled)."""
    stream = FeatureStream(kinds, config)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in stream.kinds}
    start, i = 0, 0
    while start < signal.size:
        size = sizes[i % len(sizes)]
        for kind, frames in stream.push(signal[start : start + size]).items():
            parts[kind].append(frames)
        start, i = start + size, i + 1
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}


def _assert_same_frames(streamed: dict, batch: dict) -> None:
    for kind, expected in batch.items():
        got = streamed[kind]
        assert got.shape == expected.shape, kind
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected, err_msg=kind)  # bit for bit


@pytest.mark.parametrize(
    ("label", "sizes", "seconds"),
    [
        ("1 sample", [1], 1.0),
        ("37 samples", [37], 5.0),
        ("1 second", [22050], 5.0),
        ("random", None, 5.0),
    ],
)
def test_streaming_equals_batch_on_real_audio(real_clip, label, sizes, seconds):
    signal, sr = real_clip
    assert sr == NATIVE.sample_rate
    signal = signal[: int(seconds * sr)]
    if sizes is None:
        sizes = np.random.default_rng(7).integers(1, 6000, size=400).tolist()
    batch = compute_many(signal, KINDS, NATIVE)
    assert all(v.shape[1] > 0 for v in batch.values()), label
    _assert_same_frames(_stream(signal, KINDS, NATIVE, sizes), batch)


def test_streaming_equals_batch_at_default_and_paper_settings(real_clip):
    signal, sr = real_clip
    signal = soxr.resample(signal, sr, 44100)
    sizes = np.random.default_rng(11).integers(1, 9000, size=300).tolist()
    for config in (FeatureConfig(), FeatureConfig.paper()):
        batch = compute_many(signal, KINDS, config)
        _assert_same_frames(_stream(signal, KINDS, config, sizes), batch)


def test_a_long_block_is_computed_in_pieces_with_the_same_frames(real_clip, monkeypatch):
    """Blocks longer than PIECE_SAMPLES are split (cheaper per second); the frames are the
    ones small blocks give, bit for bit."""
    signal, _ = real_clip
    monkeypatch.setattr(spectrograms_module, "PIECE_SAMPLES", 3000)
    pieces = []
    original = FeatureStream._push_piece
    monkeypatch.setattr(
        FeatureStream, "_push_piece", lambda self, x: pieces.append(x.size) or original(self, x)
    )
    whole = compute_many(signal, KINDS, NATIVE)
    assert max(pieces) == 3000 and sum(pieces) == signal.size
    monkeypatch.undo()
    _assert_same_frames(_stream(signal, KINDS, NATIVE, [1024]), whole)


@pytest.mark.parametrize("kind", KINDS)
def test_frames_appear_exactly_when_their_samples_have_arrived(real_clip, kind):
    signal, _ = real_clip
    tm = timing(kind, NATIVE)
    stream = FeatureStream(kind, NATIVE)
    assert stream.push(signal[: tm.lookahead - 1])[kind].shape[1] == 0
    assert stream.push(signal[tm.lookahead - 1 : tm.lookahead])[kind].shape[1] == 1
    assert stream.push(signal[tm.lookahead : tm.lookahead + tm.hop - 1])[kind].shape[1] == 0
    assert (
        stream.push(signal[tm.lookahead + tm.hop - 1 : tm.lookahead + tm.hop])[kind].shape[1] == 1
    )
    assert compute(signal, kind, NATIVE).shape == (128, tm.frames_for(signal.size))
    assert tm.context >= tm.lookahead


def test_stated_latencies():
    cfg = FeatureConfig()
    assert timing("logmel", cfg).lookahead == 1024
    assert timing("mfcc", cfg).lookahead == 1024 + 256
    cqt = timing("cqt", cfg)
    # the default CQT fits the ~3 s streaming window with room to spare
    assert cqt.lookahead < 0.6 * cfg.sample_rate
    assert cqt.context < 1.5 * cfg.sample_rate
    # the paper's literal CQT needs ~3.4 s around each frame (Q fs / fmin)
    paper = FeatureConfig.paper()
    expected = paper.cqt_q * paper.sample_rate / paper.cqt_fmin
    assert timing("cqt", paper).context > 0.95 * expected
    assert expected / paper.sample_rate > 3.3


def _librosa_power(signal: np.ndarray, cfg: FeatureConfig, frames: int) -> np.ndarray:
    spec = librosa.stft(
        signal,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window="hamming",
        center=True,
        pad_mode="constant",
    )
    return np.abs(spec[:, :frames]) ** 2


def test_logmel_matches_librosa(real_clip):
    signal, _ = real_clip
    ours = compute(signal, "logmel", NATIVE)
    power = _librosa_power(signal, NATIVE, ours.shape[1])
    mel = librosa.feature.melspectrogram(
        S=power, sr=22050, n_mels=128, fmin=10.0, fmax=11025.0, htk=True
    )
    np.testing.assert_allclose(ours, librosa.power_to_db(mel, amin=1e-10, top_db=None), atol=2e-3)


def test_stft_is_librosa_stft_averaged_into_linear_bands(real_clip):
    signal, _ = real_clip
    ours = compute(signal, "stft", NATIVE)
    power = _librosa_power(signal, NATIVE, ours.shape[1])
    bands = linear_bands(NATIVE)
    np.testing.assert_allclose(ours, 10 * np.log10(np.maximum(bands @ power, 1e-10)), atol=2e-3)
    # 128 equal bands from fmin to Nyquist, each a weighted mean centred on its band
    assert bands.shape == (128, 1025) and np.all(bands >= 0)
    np.testing.assert_allclose(bands.sum(axis=1), 1.0)
    centres = bands @ librosa.fft_frequencies(sr=22050, n_fft=2048)
    width = (11025.0 - 10.0) / 128
    np.testing.assert_allclose(centres, 10.0 + width * (np.arange(128) + 0.5), atol=22050 / 2048)


def test_stft_of_a_tone_peaks_in_its_band():
    cfg = FeatureConfig()
    t = np.arange(cfg.sample_rate) / cfg.sample_rate
    width = (cfg.sample_rate / 2 - cfg.fmin) / 128
    for band in (5, 64, 120):
        freq = cfg.fmin + width * (band + 0.5)
        spec = compute(np.sin(2 * np.pi * freq * t), "stft", cfg)
        assert np.all(spec.argmax(axis=0) == band)


def test_mfcc_is_dct_of_logmel_with_paper_deltas(real_clip):
    signal, _ = real_clip
    logmel = compute(signal, "logmel", NATIVE).astype(np.float64)
    mfcc = compute(signal, "mfcc", NATIVE).astype(np.float64)
    assert mfcc.shape == (128, logmel.shape[1] - 1)
    cepstra = librosa.feature.mfcc(S=logmel, n_mfcc=64, dct_type=2, norm="ortho")
    np.testing.assert_allclose(mfcc[:64], cepstra[:, :-1], atol=1e-3)
    t = 100
    np.testing.assert_allclose(mfcc[64:, t], (cepstra[:, t + 1] - cepstra[:, t - 1]) / 2, atol=1e-3)
    np.testing.assert_allclose(mfcc[64:, 0], (cepstra[:, 1] - cepstra[:, 0]) / 2, atol=1e-3)


def test_gammatone_uses_ellis_weights_on_magnitude(real_clip):
    signal, _ = real_clip
    ours = compute(signal, "gam", NATIVE)
    magnitude = np.sqrt(_librosa_power(signal, NATIVE, ours.shape[1]))
    weights, _ = fft_weights(2048, 22050, 128, 1.0, 10.0, 11025.0, 1025)
    expected = 20 * np.log10(np.maximum(weights @ magnitude / 2048, 1e-5))
    np.testing.assert_allclose(ours, expected, atol=2e-3)
    # channels run low to high: a chainsaw's energy sits well above the lowest channels
    assert ours[60:].mean() > ours[:5].mean()


def _direct_cqt(signal: np.ndarray, cfg: FeatureConfig, frames: list[int]) -> np.ndarray:
    """Paper eqs. 10-14 at the full sample rate, one bin and frame at a time."""
    out = np.zeros((cfg.n_bins, len(frames)))
    for j, t in enumerate(frames):
        centre = t * cfg.hop_length
        for k in range(cfg.n_bins):
            freq = cfg.cqt_frequency(k)
            length = cfg.cqt_q * cfg.sample_rate / freq
            n = np.arange(int(np.ceil(centre - length / 2)), int(np.floor(centre + length / 2)) + 1)
            window = 0.54 - 0.46 * np.cos(2 * np.pi * ((n - centre) / length + 0.5))
            seg = np.where((n >= 0) & (n < signal.size), signal[np.clip(n, 0, signal.size - 1)], 0)
            kernel = window * np.exp(-2j * np.pi * freq * (n - centre) / cfg.sample_rate)
            out[k, j] = abs(np.sum(seg * kernel)) / length
    return 20 * np.log10(np.maximum(out, 1e-5))


@pytest.mark.parametrize("config", [NATIVE, FeatureConfig.paper(sample_rate=22050)])
def test_multirate_cqt_matches_direct_transform(real_clip, config):
    signal, _ = real_clip
    ours = compute(signal, "cqt", config)
    frames = [ours.shape[1] // 3, ours.shape[1] - 1]
    reference = _direct_cqt(signal, config, frames)
    got = ours[:, frames]
    diff = np.abs(got - reference)
    # Agreement is bounded by the Hamming window's -43 dB sidelobes: tight near each
    # frame's peak, looser for bins far below it.
    near = reference > reference.max(axis=0) - 20
    within = reference > reference.max(axis=0) - 30
    assert near.sum() > 30
    assert diff[near].max() < 0.6
    assert np.median(diff[within]) < 0.1
    assert np.percentile(diff[within], 95) < 0.5


def test_cqt_tone_peaks_in_its_bin():
    cfg = FeatureConfig()
    t = np.arange(2 * cfg.sample_rate) / cfg.sample_rate
    for k in (3, 40, 77, 120):
        tone = np.sin(2 * np.pi * cfg.cqt_frequency(k) * t)
        spec = compute(tone, "cqt", cfg)
        assert np.all(spec[:, 5:].argmax(axis=0) == k)
        # a unit sinusoid under a Hamming window: 0.54 / 2 amplitude, about -11.4 dB
        assert abs(float(np.median(spec[k, 5:])) - 20 * np.log10(0.27)) < 0.3


def test_several_stft_spectrograms_share_one_stft(real_clip, monkeypatch):
    signal, _ = real_clip
    calls = []
    original = spectrograms_module._STFTFrames.push

    def counting_push(self, samples):
        calls.append(samples.size)
        return original(self, samples)

    monkeypatch.setattr(spectrograms_module._STFTFrames, "push", counting_push)
    stream = FeatureStream("stft,logmel,mfcc,gam", NATIVE)
    for start in range(0, 22050, 1000):
        stream.push(signal[start : start + 1000])
    assert len(calls) == len(range(0, 22050, 1000))  # one STFT per push, not one per kind


def test_config_defaults_presets_and_round_trip():
    cfg = FeatureConfig()
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_bins, cfg.fmin) == (
        44100,
        2048,
        256,
        128,
        10.0,
    )
    assert cfg.bins_per_octave == 13
    assert 20.0 <= cfg.cqt_frequency(0) and 16000 < cfg.cqt_frequency(127) < 0.9 * 22050
    paper = FeatureConfig.paper()
    assert paper.bins_per_octave == 24
    assert abs(paper.cqt_frequency(127) - 392.0) < 1.0
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg.resolved()
    assert FeatureConfig.from_dict(FeatureConfig(sample_rate=16000).to_dict()).bins_per_octave == 15
    with pytest.raises(FeatureConfigError, match="unknown feature settings: bogus"):
        FeatureConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(FeatureConfigError, match="above Nyquist"):
        FeatureConfig(sample_rate=22050, cqt_bins_per_octave=12)
    with pytest.raises(FeatureConfigError):
        dataclasses.replace(cfg, n_fft=1000)


def test_parse_kinds():
    assert parse_kinds("cqt, logmel") == ("cqt", "logmel")
    assert parse_kinds("all") == KINDS
    assert parse_kinds(["gam", "gam"]) == ("gam",)
    with pytest.raises(ValueError, match="unknown spectrogram 'mel'"):
        parse_kinds("mel")


def test_silence_is_finite_and_floored():
    silence = np.zeros(22050)
    for kind, spec in compute_many(silence, KINDS, NATIVE).items():
        assert np.all(np.isfinite(spec)), kind
    assert np.all(compute(silence, "logmel", NATIVE) == -100.0)
