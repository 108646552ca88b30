"""Training recipe: oversampling, mixup, determinism, and a real end-to-end run on ESC-10."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_asc.train.training import (
    PatchSet,
    TrainConfig,
    epoch_batches,
    epoch_indices,
    mixup,
)


def test_oversampling_balances_classes_and_keeps_every_patch() -> None:
    y = np.array([0] * 10 + [1] * 3 + [2] * 1)
    order = epoch_indices(y, 3, oversample=True, rng=np.random.default_rng(0))
    assert np.bincount(y[order], minlength=3).tolist() == [10, 10, 10]
    assert set(order.tolist()) == set(range(y.size))  # nothing dropped
    plain = epoch_indices(y, 3, oversample=False, rng=np.random.default_rng(0))
    assert sorted(plain.tolist()) == list(range(y.size))


def test_mixup_is_a_convex_mix_of_pairs() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0, 1]]
    mx, my = mixup(x, y, alpha=0.4, rng=np.random.default_rng(2))
    np.testing.assert_allclose(my.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all((my >= 0) & (my <= 1))
    # Recover each lambda from the labels and check the inputs were mixed the same way.
    replay = np.random.default_rng(2)
    partner = replay.permutation(8)
    lam = replay.beta(0.4, 0.4, size=8).astype(np.float32)
    expected = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[partner]
    np.testing.assert_allclose(mx, expected, rtol=1e-6)
    same_x, same_y = mixup(x, y, alpha=0.0, rng=rng)
    assert same_x is x and same_y is y


def test_epoch_batches_are_deterministic_per_seed_and_epoch() -> None:
    rng = np.random.default_rng(3)
    patches = PatchSet(
        x=rng.standard_normal((23, 4, 4)).astype(np.float32),
        y=rng.integers(0, 3, 23),
        clip=np.arange(23),
    )
    config = TrainConfig(batch_size=5, seed=7)
    first = list(epoch_batches(patches, 3, config, epoch=4))
    again = list(epoch_batches(patches, 3, config, epoch=4))
    other = list(epoch_batches(patches, 3, config, epoch=5))
    assert [b[0].shape for b in first][0] == (5, 4, 4, 1)
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(first[0][0], other[0][0])


def test_train_config_validates_and_round_trips() -> None:
    config = TrainConfig(width=0.25, epochs=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig().to_dict()["learning_rate"] == 1e-4  # the paper's defaults
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(strategy="tpu")
