"""Tests for edge_asc.audio on real ESC-10 recordings and files written from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from scipy.signal import resample_poly

from edge_asc.audio import (
    AudioError,
    AudioInfo,
    audio_info,
    iter_audio_blocks,
    load_audio,
    validate_sample_rate,
)

CLIP_RATE = 22050
CLIP_FRAMES = 5 * CLIP_RATE


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def _band_energy(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


@pytest.fixture(scope="module")
def clip_48k(real_clip: tuple[np.ndarray, int]) -> np.ndarray:
    """The real clip moved to 48 kHz by scipy's polyphase filter (independent of soxr)."""
    data, sr = real_clip
    assert sr == CLIP_RATE
    return resample_poly(data, 320, 147)  # 22050 * 320 / 147 = 48000


# --- reading and resampling ---------------------------------------------------------------


def test_audio_info_of_real_clip(real_clip_path: Path) -> None:
    assert audio_info(real_clip_path) == AudioInfo(
        sample_rate=CLIP_RATE, channels=1, frames=CLIP_FRAMES, duration_s=5.0
    )


def test_load_at_native_rate_is_exactly_the_file(
    real_clip_path: Path, real_clip: tuple[np.ndarray, int]
) -> None:
    data, sr = real_clip
    out = load_audio(real_clip_path, sr)
    assert out.dtype == np.float32
    assert out.ndim == 1
    assert out.flags.c_contiguous
    # 16-bit samples are exact in float32, so nothing may differ at all.
    np.testing.assert_array_equal(out.astype(np.float64), data)
    assert np.abs(data).max() > 0.1  # a real signal, not silence


def test_load_accepts_str_path_and_numpy_rate(real_clip_path: Path) -> None:
    a = load_audio(str(real_clip_path), np.int64(CLIP_RATE))
    b = load_audio(real_clip_path, CLIP_RATE)
    np.testing.assert_array_equal(a, b)


def test_upsampling_doubles_length_and_keeps_content(
    real_clip_path: Path, real_clip: tuple[np.ndarray, int]
) -> None:
    data, sr = real_clip
    out = load_audio(real_clip_path, 2 * sr)
    assert out.dtype == np.float32
    assert out.shape == (2 * CLIP_FRAMES,)
    # soxr compensates its filter delay: every second output sample is an input sample.
    assert _corr(out[::2], data) > 0.999
    # An independent resampler (scipy's polyphase FIR) agrees.
    reference = resample_poly(data, 2, 1)
    assert _corr(out, reference) > 0.999
    assert np.sqrt(np.mean((out - reference) ** 2)) < 0.02 * np.sqrt(np.mean(reference**2))
    # Energy is preserved below the old Nyquist and nothing is imaged above it.
    below = _band_energy(out, 2 * sr, 0, 0.9 * sr / 2)
    assert below == pytest.approx(2 * 2 * _band_energy(data, sr, 0, 0.9 * sr / 2), rel=0.02)
    assert _band_energy(out, 2 * sr, 1.05 * sr / 2, sr) < 1e-4 * below


def test_downsampling_by_five_without_aliasing(
    real_clip_path: Path, real_clip: tuple[np.ndarray, int]
) -> None:
    data, sr = real_clip
    target = sr // 5  # 4410 Hz
    # The chainsaw is broadband: there is energy above the new Nyquist that could alias.
    assert _band_energy(data, sr, target / 2, sr / 2) > 0.03 * _band_energy(data, sr, 0, sr / 2)
    out = load_audio(real_clip_path, target)
    assert out.shape == (CLIP_FRAMES // 5,)
    assert _corr(out, resample_poly(data, 1, 5)) > 0.995  # filters differ near Nyquist
    # The passband keeps its energy (scaled by 1/25 for a fifth of the samples); plain
    # decimation, with no anti-alias filter, folds the upper band onto it.
    band = 0.8 * target / 2
    kept = _band_energy(out, target, 0, band)
    assert kept == pytest.approx(_band_energy(data, sr, 0, band) / 25, rel=0.005)
    assert _band_energy(data[::5], target, 0, band) > 1.02 * kept


def test_stereo_48k_wav_is_averaged_and_resampled(tmp_path: Path, clip_48k: np.ndarray) -> None:
    gain = 0.5
    stereo = np.stack([clip_48k, gain * clip_48k], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 48000, subtype="FLOAT")
    assert audio_info(path).channels == 2

    expected_mono = (1 + gain) / 2 * clip_48k  # the mean, not the sum nor the first channel
    at_48k = load_audio(path, 48000)
    assert at_48k.shape == (len(clip_48k),)
    np.testing.assert_allclose(at_48k, expected_mono, rtol=0, atol=1e-6)

    at_16k = load_audio(path, 16000)
    assert at_16k.shape == (len(clip_48k) // 3,)
    reference = resample_poly(expected_mono, 1, 3)
    assert _corr(at_16k, reference) > 0.999
    rms_ratio = np.sqrt(np.mean(at_16k**2) / np.mean(reference**2))
    assert rms_ratio == pytest.approx(1.0, abs=0.02)


def test_stereo_48k_wav_back_to_22050_matches_the_clip(
    tmp_path: Path, clip_48k: np.ndarray, real_clip: tuple[np.ndarray, int]
) -> None:
    data, sr = real_clip
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([clip_48k, 0.5 * clip_48k], axis=1), 48000, subtype="PCM_24")
    out = load_audio(path, sr)
    assert abs(len(out) - len(data)) <= 1
    assert _corr(out, 0.75 * data) > 0.999


def test_ogg_vorbis_written_at_test_time_reads(
    tmp_path: Path, real_clip: tuple[np.ndarray, int]
) -> None:
    data, sr = real_clip
    path = tmp_path / "clip.ogg"
    sf.write(path, data, sr, format="OGG", subtype="VORBIS")
    info = audio_info(path)
    assert (info.sample_rate, info.channels) == (sr, 1)
    out = load_audio(path, sr)
    assert out.dtype == np.float32
    assert abs(len(out) - len(data)) <= 2048  # lossy codec: length may be padded
    assert _corr(out, data) > 0.95


# --- bad input ----------------------------------------------------------------------------


def _missing(tmp_path: Path, clip: Path) -> Path:
    return tmp_path / "missing.wav"


def _directory(tmp_path: Path, clip: Path) -> Path:
    path = tmp_path / "folder.wav"
    path.mkdir()
    return path


def _empty_wav(tmp_path: Path, clip: Path) -> Path:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), CLIP_RATE)
    assert sf.info(path).frames == 0
    return path


def _random_bytes(tmp_path: Path, clip: Path) -> Path:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _truncated_flac(tmp_path: Path, clip: Path) -> Path:
    path = tmp_path / "truncated.flac"
    path.write_bytes(clip.read_bytes()[:100])
    return path


def _nan_wav(tmp_path: Path, clip: Path) -> Path:
    data, sr = sf.read(clip, dtype="float32")
    data[len(data) // 2] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, data, sr, subtype="FLOAT")
    return path


def _inf_stereo_wav(tmp_path: Path, clip: Path) -> Path:
    data, sr = sf.read(clip, dtype="float32")
    stereo = np.stack([data, data], axis=1)
    stereo[1000, 1] = np.inf
    path = tmp_path / "inf.wav"
    sf.write(path, stereo, sr, subtype="FLOAT")
    return path


BAD_FILES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing": (_missing, "file not found"),
    "directory": (_directory, "is a directory, not an audio file"),
    "empty": (_empty_wav, "holds no audio samples"),
    "random-bytes": (_random_bytes, "not an audio file or corrupt (Format not recognised)"),
    "truncated-flac": (_truncated_flac, "not an audio file or corrupt ("),
    "nan": (_nan_wav, "NaN or infinite samples"),
    "inf-in-one-channel": (_inf_stereo_wav, "NaN or infinite samples"),
}


def _assert_one_line_naming(error: AudioError, path: Path, fragment: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert f"'{path}'" in message
    assert fragment in message


@pytest.mark.parametrize("case", BAD_FILES)
def test_load_audio_rejects_bad_file(tmp_path: Path, real_clip_path: Path, case: str) -> None:
    make, fragment = BAD_FILES[case]
    path = make(tmp_path, real_clip_path)
    with pytest.raises(AudioError) as info:
        load_audio(path, 44100)
    _assert_one_line_naming(info.value, path, fragment)


@pytest.mark.parametrize("case", BAD_FILES)
def test_iter_audio_blocks_rejects_bad_file(
    tmp_path: Path, real_clip_path: Path, case: str
) -> None:
    make, fragment = BAD_FILES[case]
    path = make(tmp_path, real_clip_path)
    with pytest.raises(AudioError) as info:
        list(iter_audio_blocks(path, 44100, block_frames=4096))
    _assert_one_line_naming(info.value, path, fragment)


@pytest.mark.parametrize("case", ["missing", "directory", "random-bytes"])
def test_audio_info_rejects_unopenable_file(
    tmp_path: Path, real_clip_path: Path, case: str
) -> None:
    make, fragment = BAD_FILES[case]
    path = make(tmp_path, real_clip_path)
    with pytest.raises(AudioError) as info:
        audio_info(path)
    _assert_one_line_naming(info.value, path, fragment)


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "random-bytes"])
def test_iter_audio_blocks_fails_at_call_not_at_first_block(
    tmp_path: Path, real_clip_path: Path, case: str
) -> None:
    make, _ = BAD_FILES[case]
    with pytest.raises(AudioError):
        iter_audio_blocks(make(tmp_path, real_clip_path), 44100)


def test_raw_extension_is_an_audio_error(tmp_path: Path, real_clip_path: Path) -> None:
    # soundfile raises TypeError ("samplerate must be specified") for *.raw files.
    path = tmp_path / "clip.raw"
    path.write_bytes(real_clip_path.read_bytes())
    with pytest.raises(AudioError) as info:
        load_audio(path, CLIP_RATE)
    _assert_one_line_naming(info.value, path, "not an audio file or corrupt")


def test_control_characters_in_name_stay_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.wav"
    with pytest.raises(AudioError) as info:
        load_audio(path, 16000)
    assert "\n" not in str(info.value)
    assert "two\\nlines.wav" in str(info.value)


def test_flac_damaged_half_way_fails_mid_stream(tmp_path: Path, real_clip_path: Path) -> None:
    raw = real_clip_path.read_bytes()
    path = tmp_path / "half.flac"
    path.write_bytes(raw[: len(raw) // 2])
    assert audio_info(path).frames == CLIP_FRAMES  # the header still promises the whole clip

    blocks = iter_audio_blocks(path, CLIP_RATE, block_frames=1000)
    received = []
    with pytest.raises(AudioError) as info:
        for block in blocks:
            received.append(block)
    _assert_one_line_naming(info.value, path, "not an audio file or corrupt (")
    # Some audio came out before the damage was reached, and it was the real audio.
    got = np.concatenate(received)
    assert 0 < len(got) < CLIP_FRAMES
    expected, _ = sf.read(real_clip_path, dtype="float32", frames=len(got))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rate", [0, -16000, 999, 384_001, 44100.0, True, "44100", None])
def test_validate_sample_rate_rejects(rate: object) -> None:
    with pytest.raises(AudioError) as info:
        validate_sample_rate(rate)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert "sample rate" in str(info.value)


@pytest.mark.parametrize("rate", [1000, 16000, np.int32(44100), 384_000])
def test_validate_sample_rate_accepts(rate: int) -> None:
    out = validate_sample_rate(rate)
    assert out == int(rate)
    assert type(out) is int


def test_load_and_stream_validate_the_rate(real_clip_path: Path) -> None:
    with pytest.raises(AudioError, match="out of range"):
        load_audio(real_clip_path, 0)
    with pytest.raises(AudioError, match="out of range"):
        iter_audio_blocks(real_clip_path, 10**6)


@pytest.mark.parametrize("block_frames", [0, -1, 1.5])
def test_iter_audio_blocks_rejects_bad_block_size(
    real_clip_path: Path, block_frames: object
) -> None:
    with pytest.raises(ValueError, match="block_frames"):
        iter_audio_blocks(real_clip_path, CLIP_RATE, block_frames=block_frames)  # type: ignore[arg-type]


# --- streaming ----------------------------------------------------------------------------


def test_streamed_blocks_match_load_audio_when_resampling(real_clip_path: Path) -> None:
    whole = load_audio(real_clip_path, 44100)
    blocks = list(iter_audio_blocks(real_clip_path, 44100, block_frames=1000))
    assert len(blocks) > 100  # really streamed, not read in one go
    assert all(b.dtype == np.float32 and b.ndim == 1 and b.size > 0 for b in blocks)
    # Memory stays bounded: soxr releases output in bursts, but never much more than a
    # couple of resampled input blocks at once.
    assert max(len(b) for b in blocks) <= 2 * (2 * 1000)
    joined = np.concatenate(blocks)
    assert abs(len(joined) - len(whole)) <= 2
    n = min(len(joined), len(whole))
    peak = np.abs(whole).max()
    assert np.abs(joined[:n] - whole[:n]).max() < 1e-3 * peak
    assert _corr(joined, whole) > 0.99999


def test_streamed_blocks_are_exact_without_resampling(
    real_clip_path: Path, real_clip: tuple[np.ndarray, int]
) -> None:
    data, sr = real_clip
    blocks = list(iter_audio_blocks(real_clip_path, sr, block_frames=4096))
    assert [len(b) for b in blocks] == [4096] * (CLIP_FRAMES // 4096) + [CLIP_FRAMES % 4096]
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(real_clip_path, sr))
    np.testing.assert_array_equal(np.concatenate(blocks).astype(np.float64), data)


def test_streamed_stereo_matches_load_audio(tmp_path: Path, clip_48k: np.ndarray) -> None:
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([clip_48k, -0.25 * clip_48k], axis=1), 48000, subtype="PCM_16")
    whole = load_audio(path, 22050)
    joined = np.concatenate(list(iter_audio_blocks(path, 22050, block_frames=777)))
    assert abs(len(joined) - len(whole)) <= 2
    n = min(len(joined), len(whole))
    np.testing.assert_allclose(joined[:n], whole[:n], rtol=0, atol=1e-3 * np.abs(whole).max())
    # and the downmix really is the mean of the two channels
    reference = soxr.resample(0.375 * clip_48k, 48000, 22050, quality="HQ")
    assert _corr(whole, reference) > 0.9999


def test_tiny_blocks_never_yield_empty_arrays(real_clip_path: Path) -> None:
    # soxr returns nothing for most tiny input chunks while it fills its buffer.
    blocks = list(iter_audio_blocks(real_clip_path, 16000, block_frames=64))
    assert blocks
    assert min(len(b) for b in blocks) > 0
    whole = load_audio(real_clip_path, 16000)
    joined = np.concatenate(blocks)
    assert abs(len(joined) - len(whole)) <= 2
    assert _corr(joined, whole) > 0.99999
