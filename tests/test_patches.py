"""Patches and normalisation: the exact model inputs training and runtime both build."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_asc.features import FeatureConfig, NormStats, compute, cut_patches


def test_non_overlapping_patches_tile_the_spectrogram() -> None:
    spec = np.arange(4 * 300, dtype=np.float32).reshape(4, 300)
    patches = cut_patches(spec, width=128)
    assert patches.shape == (2, 4, 128) and patches.dtype == np.float32
    np.testing.assert_array_equal(patches[0], spec[:, :128])
    np.testing.assert_array_equal(patches[1], spec[:, 128:256])  # the last 44 frames dropped


def test_patch_hop_for_the_runtime() -> None:
    spec = np.random.default_rng(1).standard_normal((8, 200))
    patches = cut_patches(spec, width=128, hop=32)
    assert patches.shape == (3, 8, 128)
    for i, patch in enumerate(patches):
        np.testing.assert_allclose(patch, spec[:, 32 * i : 32 * i + 128].astype(np.float32))
    patches[0, 0, 0] = 1e9  # a copy, not a view of the spectrogram
    assert spec[0, 0] != 1e9


def test_too_short_gives_no_patches_and_bad_arguments_raise() -> None:
    assert cut_patches(np.zeros((128, 127)), 128).shape == (0, 128, 128)
    with pytest.raises(ValueError, match="bins, frames"):
        cut_patches(np.zeros(10))
    with pytest.raises(ValueError, match="positive"):
        cut_patches(np.zeros((4, 10)), width=4, hop=0)


def test_real_clip_patches(real_clip: tuple[np.ndarray, int]) -> None:
    signal, sample_rate = real_clip
    spec = compute(signal, "logmel", FeatureConfig(sample_rate=sample_rate))
    patches = cut_patches(spec)
    assert patches.shape == (spec.shape[1] // 128, 128, 128)


def test_norm_stats_fit_matches_numpy_on_db_scale() -> None:
    rng = np.random.default_rng(2)
    # dB-like values far from zero with small spread: naive sums would lose precision.
    specs = [-80.0 + 0.01 * rng.standard_normal((16, n)) for n in (50, 7, 300)]
    stats = NormStats.fit(specs)
    joined = np.concatenate(specs, axis=1)
    np.testing.assert_allclose(stats.mean, joined.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats.std, joined.std(axis=1), rtol=1e-9)
    normed = stats.apply(joined)
    assert normed.dtype == np.float32
    np.testing.assert_allclose(normed.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=1), 1.0, atol=1e-4)


def test_norm_stats_floor_round_trip_and_patch_application() -> None:
    specs = [np.full((3, 10), 5.0)]
    stats = NormStats.fit(specs)
    assert np.all(stats.std == NormStats.STD_FLOOR)
    again = NormStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.std, stats.std)
    patches = np.ones((2, 3, 4)) * 5.0
    assert np.all(stats.apply(patches) == 0.0)


def test_norm_stats_errors() -> None:
    with pytest.raises(ValueError, match="no spectrogram frames"):
        NormStats.fit([np.zeros((4, 0))])
    stats = NormStats(mean=np.zeros(4), std=np.ones(4))
    with pytest.raises(ValueError, match="bins"):
        stats.apply(np.zeros((5, 10)))
    with pytest.raises(ValueError, match="std > 0"):
        NormStats.from_dict({"mean": [0.0, 1.0], "std": [1.0, 0.0]})
