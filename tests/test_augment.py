"""Training augmentation and the open-set training data and threshold fit."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edge_asc.decision import UNKNOWN
from edge_asc.train import augment
from edge_asc.train.open_set import (
    NonTarget,
    assign_folds,
    decisions,
    fit_threshold,
    rates,
    write_manifest,
)
from edge_asc.train.training import PatchSet, TrainConfig, epoch_plan

MEAN, STD = np.full(8, -40.0), np.full(8, 5.0)


def _patches(seed: int = 0) -> PatchSet:
    """Three classes, class 2 the background; dB-normalised patches of 8 bins x 16 frames."""
    rng = np.random.default_rng(seed)
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    return PatchSet(rng.normal(size=(8, 8, 16)).astype(np.float32), y, np.arange(8), MEAN, STD)


def _none(b: int, masks: int = augment.MASKS) -> augment.Augmentation:
    def zeros() -> np.ndarray:
        return np.zeros((b, masks, 2), dtype=np.int64)

    return augment.Augmentation(np.zeros(b), np.full(b, -1), np.zeros(b), zeros(), zeros())


def test_gain_is_a_shift_in_db() -> None:
    patches = _patches()
    drawn = _none(2)
    drawn.gain_db[:] = [6.0, -3.0]
    out = augment.apply(patches.x[:2], np.arange(2), drawn, patches.x, MEAN, STD)
    db_in = patches.x[:2] * STD[:, None] + MEAN[:, None]
    db_out = out * STD[:, None] + MEAN[:, None]
    np.testing.assert_allclose(db_out - db_in, [[[6.0]], [[-3.0]]] * np.ones_like(db_in), atol=1e-4)


def test_background_is_added_in_power_at_the_drawn_ratio() -> None:
    patches = _patches()
    drawn = _none(1)
    drawn.background[0], drawn.snr_db[0] = 0, 0.0  # the patch itself, at 0 dB: power doubles
    out = augment.apply(patches.x[:1], np.arange(1), drawn, patches.x, MEAN, STD)
    gained = (out - patches.x[:1]) * STD[:, None]
    np.testing.assert_allclose(gained, 10 * np.log10(2.0), atol=1e-4)
    drawn.snr_db[0] = 200.0  # a background far below: nothing changes
    out = augment.apply(patches.x[:1], np.arange(1), drawn, patches.x, MEAN, STD)
    np.testing.assert_allclose(out, patches.x[:1], atol=1e-5)


def test_masks_set_bands_and_spans_to_the_mean() -> None:
    patches = _patches()
    drawn = _none(1, masks=1)
    drawn.freq_masks[0, 0], drawn.time_masks[0, 0] = (2, 3), (10, 4)
    out = augment.apply(patches.x[:1], np.arange(1), drawn, patches.x, MEAN, STD)[0]
    assert np.all(out[2:5] == 0) and np.all(out[:, 10:14] == 0)
    np.testing.assert_array_equal(out[5:, :10], patches.x[0, 5:, :10])


def test_epoch_plans_mix_only_background_into_targets_deterministically() -> None:
    patches = _patches()
    config = TrainConfig(batch_size=8, augment=True, seed=3, mixup_alpha=0.0)
    plans = epoch_plan(patches.y, 3, config, epoch=0, background_class=2, shape=(8, 16))
    again = epoch_plan(patches.y, 3, config, epoch=0, background_class=2, shape=(8, 16))
    for plan, twin in zip(plans, again, strict=True):
        assert plan.augmentation is not None and twin.augmentation is not None
        np.testing.assert_array_equal(plan.augmentation.background, twin.augmentation.background)
        mixed = plan.augmentation.background
        assert np.all(patches.y[mixed[mixed >= 0]] == 2)  # only background patches mixed in
        assert np.all(mixed[patches.y[plan.idx] == 2] == -1)  # never into the background
        for start, width in plan.augmentation.freq_masks.reshape(-1, 2):
            assert 0 <= start and start + width <= 8 and width <= augment.MASK_WIDTH
    eye = np.eye(3, dtype=np.float32)
    plan = plans[0]
    whole, _ = plan.gather(patches, eye)
    halves = [plan.gather(patches, eye, plan.rows(part, 2))[0] for part in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), whole)  # replicas agree
    plain = epoch_plan(patches.y, 3, TrainConfig(batch_size=8, seed=3, mixup_alpha=0.0), 0)
    assert plain[0].augmentation is None
    np.testing.assert_array_equal(plain[0].idx, plan.idx)  # same order with or without


def test_each_non_target_source_lands_in_one_fold(tmp_path: Path) -> None:
    assert assign_folds({"a": 5, "b": 3, "c": 2, "d": 1}, (1, 2)) == {
        "a": 1,
        "b": 2,
        "c": 2,
        "d": 1,  # a tie (5 and 5): the lower fold
    }
    target = tmp_path / "target" / "manifest.csv"
    target.parent.mkdir()
    target.write_text("filename,label,fold\nx1.flac,dog,1\nx2.flac,rain,2\n")
    other = tmp_path / "other" / "manifest.csv"
    other.parent.mkdir()
    rows = ["filename,label,fold,source_id"] + [
        f"s{i}.flac,{'rain' if i == 0 else 'birds'},0,src{i % 3}" for i in range(7)
    ]
    other.write_text("\n".join(rows) + "\n")
    out = tmp_path / "open" / "manifest.csv"
    out.parent.mkdir()
    counts = write_manifest(
        target, [NonTarget(other, keep=frozenset({"birds"}))], out, folds=(1, 2)
    )
    with open(out, newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["label"] for r in written[:2]] == ["dog", "rain"]
    unknown = [r for r in written if r["label"] == UNKNOWN]
    assert len(unknown) == 6 == sum(counts.values())  # the in-domain 'rain' row left out
    fold_of: dict[str, set[str]] = {}
    for r in unknown:
        fold_of.setdefault(r["source_id"], set()).add(r["fold"])
        assert Path(r["filename"]).is_absolute()
    assert all(len(folds) == 1 for folds in fold_of.values())


def test_threshold_fit_trades_in_domain_against_non_target() -> None:
    labels = ("dog", "rain", UNKNOWN)
    fused = np.array(
        [
            [0.9, 0.05, 0.05],  # dog, confident
            [0.55, 0.4, 0.05],  # dog, weak
            [0.1, 0.2, 0.7],  # non-target, background class wins
            [0.6, 0.3, 0.1],  # non-target, looks like a weak dog
        ]
    )
    truth = ["dog", "dog", UNKNOWN, UNKNOWN]
    assert decisions(fused, labels, 0.0) == ["dog", "dog", UNKNOWN, "dog"]
    assert rates(fused, truth, labels, 0.0).non_target_unknown == 0.5
    best = fit_threshold(fused, truth, labels)
    assert best.in_domain_correct == 1.0 and best.non_target_unknown == 0.5
    assert best.threshold == 0.0  # the lowest of the ties
    fused[1, :2] = [0.65, 0.3]  # the weak dog now outscores the weak non-target
    best = fit_threshold(fused, truth, labels)
    assert best.in_domain_correct == best.non_target_unknown == 1.0
    assert 0.6 < best.threshold <= 0.65
    with pytest.raises(ValueError):
        rates(fused, truth[:2], labels, 0.5)
