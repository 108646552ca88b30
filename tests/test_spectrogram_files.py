"""Tests for edge_asc.spectrogram_files: streamed .npy/.npz equal the batch spectrograms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_asc.audio import AudioError, iter_audio_blocks
from edge_asc.features import FeatureConfig, compute_many
from edge_asc.spectrogram_files import (
    KEEP_MAX_SECONDS,
    SpectrogramFileError,
    write_spectrograms,
)

CONFIG = FeatureConfig(sample_rate=22050)


@pytest.fixture(scope="module")
def expected(real_clip_path: Path) -> dict[str, np.ndarray]:
    signal = np.concatenate(list(iter_audio_blocks(real_clip_path, CONFIG.sample_rate)))
    return compute_many(signal, "all", CONFIG)


@pytest.mark.parametrize("block", [None, 1000, 4097])
def test_npz_equals_batch_at_any_block(
    real_clip_path: Path, tmp_path: Path, expected: dict[str, np.ndarray], block: int | None
) -> None:
    out = tmp_path / "all.npz"
    result = write_spectrograms(real_clip_path, "all", CONFIG, out, block=block)
    assert result.arrays is None
    with np.load(out) as saved:
        assert saved.files == ["stft", "logmel", "mfcc", "cqt", "gam"]
        for kind in saved.files:
            np.testing.assert_array_equal(saved[kind], expected[kind], err_msg=kind)
            assert saved[kind].dtype == np.float32
    for summary in result.summaries:
        array = expected[summary.kind]
        assert (summary.bins, summary.frames) == array.shape
        assert (summary.low, summary.high) == (float(array.min()), float(array.max()))
        assert summary.seconds == pytest.approx(array.shape[1] * 256 / 22050)
    assert [p.name for p in tmp_path.iterdir()] == ["all.npz"]  # the parts are gone


def test_npy_is_fortran_order_with_the_real_shape(
    real_clip_path: Path, tmp_path: Path, expected: dict[str, np.ndarray]
) -> None:
    out = tmp_path / "cqt.npy"
    write_spectrograms(real_clip_path, "cqt", CONFIG, out)
    with open(out, "rb") as f:
        assert np.lib.format.read_magic(f) == (1, 0)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        assert f.tell() % 64 == 0  # the data stays aligned, as numpy writes it
    assert (shape, fortran, dtype) == (expected["cqt"].shape, True, np.dtype("<f4"))
    np.testing.assert_array_equal(np.load(out), expected["cqt"])
    assert os.path.getsize(out) == 128 + expected["cqt"].size * 4


def test_keep_returns_the_arrays_and_summaries_without_output(
    real_clip_path: Path, expected: dict[str, np.ndarray]
) -> None:
    result = write_spectrograms(real_clip_path, "logmel,gam", CONFIG, keep=True)
    assert result.arrays is not None and list(result.arrays) == ["logmel", "gam"]
    for kind, array in result.arrays.items():
        np.testing.assert_array_equal(array, expected[kind])
    assert [s.kind for s in result.summaries] == ["logmel", "gam"]
    line = result.summaries[0].describe()
    assert line.startswith(f"logmel  128x{expected['logmel'].shape[1]} float32  (")


def test_keep_refuses_long_audio_before_computing(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    rate = 1000  # the lowest rate a file may have: a long file in few bytes
    sf.write(path, np.zeros(int(KEEP_MAX_SECONDS * rate) + rate, dtype=np.int16), rate)
    with pytest.raises(SpectrogramFileError, match=r"61 s long.*limited to 60 s"):
        write_spectrograms(path, "logmel", CONFIG, keep=True)


@pytest.mark.parametrize(
    ("kinds", "out", "block", "fragment"),
    [
        ("logmel", "x.txt", None, ".npy or .npz"),
        ("logmel,cqt", "x.npy", None, "need an .npz"),
        ("logmel", "x.npy", 0, "positive"),
    ],
)
def test_bad_requests(
    real_clip_path: Path, tmp_path: Path, kinds: str, out: str, block: int | None, fragment: str
) -> None:
    with pytest.raises(SpectrogramFileError, match=fragment):
        write_spectrograms(real_clip_path, kinds, CONFIG, tmp_path / out, block=block)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_stream_leaves_nothing(real_clip_path: Path, tmp_path: Path) -> None:
    raw = real_clip_path.read_bytes()
    cut = tmp_path / "in" / "half.flac"
    cut.parent.mkdir()
    cut.write_bytes(raw[: len(raw) // 2])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(AudioError):
        write_spectrograms(cut, "all", CONFIG, out / "x.npz", block=1024)
    assert list(out.iterdir()) == []
