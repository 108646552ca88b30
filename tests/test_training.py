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
    assert first[0][0].shape == (5, 4, 4, 1)
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


# --- end to end on real recordings ----------------------------------------------------------

tf = pytest.importorskip("tensorflow", reason="the training side needs the [train] extra")


def test_run_directory_holds_everything(tiny_run: Path) -> None:
    spec = json.loads((tiny_run / "run.json").read_text())
    assert spec["kinds"] == ["logmel", "cqt"] and spec["labels"] == ["chainsaw", "dog", "rain"]
    assert spec["features"]["sample_rate"] == 22050
    for kind in ("logmel", "cqt"):
        assert (tiny_run / kind / "model.keras").is_file()
        norm = json.loads((tiny_run / kind / "norm.json").read_text())
        assert len(norm["mean"]) == 128
        history = (tiny_run / kind / "history.csv").read_text().splitlines()
        assert len(history) == 3  # header + 2 epochs
        assert any((tiny_run / kind / "logs").rglob("*tfevents*"))
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    systems = metrics["systems"]
    assert {"logmel", "cqt", "cqt+logmel/mean", "cqt+logmel/prod", "cqt+logmel/max"} <= set(systems)
    assert metrics["n_clips"] == 9
    for m in systems.values():
        assert 0.0 <= m["accuracy"] <= 1.0 and np.isfinite(m["log_loss"])
    assert (tiny_run / "confusion_logmel.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(tiny_run / "posteriors.npz") as post:
        np.testing.assert_allclose(post["logmel"].sum(axis=1), 1.0, rtol=1e-5)


def test_norm_stats_come_from_the_training_split_only(tiny_run: Path) -> None:
    from edge_asc.features import FeatureConfig, NormStats
    from edge_asc.train.cache import FeatureCache
    from edge_asc.train.datasets import read_dataset

    spec = json.loads((tiny_run / "run.json").read_text())
    index = read_dataset("csv", spec["root"])
    cache = FeatureCache(tiny_run.parent / "cache", FeatureConfig.from_dict(spec["features"]))
    train_paths = [index.clips[i].path for i in index.split(1).train]
    expected = NormStats.fit(cache.load("logmel", p) for p in train_paths)
    stored = json.loads((tiny_run / "logmel" / "norm.json").read_text())
    np.testing.assert_allclose(stored["mean"], expected.mean)
    everything = NormStats.fit(cache.load("logmel", c.path) for c in index.clips)
    assert not np.allclose(stored["mean"], everything.mean)


def test_evaluate_command_reproduces_the_stored_metrics(tiny_run: Path) -> None:
    from typer.testing import CliRunner

    from edge_asc.cli import app

    before = json.loads((tiny_run / "metrics.json").read_text())["systems"]
    result = CliRunner().invoke(
        app,
        ["evaluate", str(tiny_run), "--fusion", "prod", "--cache", str(tiny_run.parent / "cache")],
    )
    assert result.exit_code == 0, result.output
    after = json.loads((tiny_run / "metrics.json").read_text())["systems"]
    assert "cqt+logmel/mean" not in after and "cqt+logmel/prod" in after
    assert after["logmel"]["accuracy"] == before["logmel"]["accuracy"]


def test_rerun_resumes_and_other_settings_are_refused(tiny_run: Path, tiny_manifest: Path):
    from typer.testing import CliRunner

    from edge_asc.cli import app

    stamp = (tiny_run / "logmel" / "model.keras").stat().st_mtime_ns
    base = [
        "train",
        "--dataset",
        "csv",
        "--root",
        str(tiny_manifest),
        "--out",
        str(tiny_run),
        "--features",
        "logmel,cqt",
        "--epochs",
        "2",
        "--sample-rate",
        "22050",
        "--cache",
        str(tiny_run.parent / "cache"),
        "--workers",
        "1",
    ]
    result = CliRunner().invoke(app, [*base, "--width", "0.0625"])
    assert result.exit_code == 0, result.output
    assert (tiny_run / "logmel" / "model.keras").stat().st_mtime_ns == stamp  # kept, not redone
    refused = CliRunner().invoke(app, [*base, "--width", "0.5"])
    assert refused.exit_code == 2
    assert "other settings" in refused.stderr and "Traceback" not in refused.output
    # A run made before a setting existed resumes: the new setting takes its default.
    stored = json.loads((tiny_run / "run.json").read_text())
    for newer in ("patch_hop", "augment"):
        del stored["training"][newer]
    (tiny_run / "run.json").write_text(json.dumps(stored))
    again = CliRunner().invoke(app, [*base, "--width", "0.0625"])
    assert again.exit_code == 0, again.output
    assert (tiny_run / "logmel" / "model.keras").stat().st_mtime_ns == stamp


def test_bad_dataset_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_asc.cli import app

    result = CliRunner().invoke(
        app,
        ["train", "--dataset", "esc50", "--root", str(tmp_path), "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "esc50.csv" in result.stderr
    assert not (tmp_path / "r").exists()


MIRRORED_SCRIPT = """
import sys, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edge_asc.train.training import PatchSet, TrainConfig, make_strategy, train_model
strategy = make_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
rng = np.random.default_rng(0)
patches = PatchSet(rng.standard_normal((12, 128, 128)).astype("float32"), np.arange(12) % 3,
                   np.arange(12))
config = TrainConfig(model="cdnn", width=0.0625, epochs=1, batch_size=6, strategy="mirrored")
model = train_model(patches, patches, 3, config, sys.argv[1], verbose=0)
print("replicas", strategy.num_replicas_in_sync, "outputs", model.output_shape[-1])
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path / "m")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "replicas 2 outputs 3" in done.stdout
    assert (tmp_path / "m" / "model.keras").is_file()


@pytest.fixture(scope="module")
def real_patches(tiny_manifest: Path) -> PatchSet:
    """Normalised logmel patches of the tiny real set (22.05 kHz)."""
    from edge_asc.audio import load_audio
    from edge_asc.features import FeatureConfig, NormStats, compute
    from edge_asc.train.training import assemble_patches

    with open(tiny_manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    labels = sorted({r["label"] for r in rows})
    config = FeatureConfig(sample_rate=22050)
    specs = [compute(load_audio(r["filename"], 22050), "logmel", config) for r in rows]
    norm = NormStats.fit(specs)
    return assemble_patches(specs, [labels.index(r["label"]) for r in rows], norm)


def test_loss_falls_on_a_tiny_real_set(real_patches: PatchSet, tmp_path: Path) -> None:
    from edge_asc.train.training import train_model

    config = TrainConfig(
        model="cdnn", width=0.125, epochs=8, batch_size=16, learning_rate=1e-3, mixup_alpha=0.0
    )
    train_model(real_patches, None, 3, config, tmp_path, verbose=0)
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(row["loss"]) for row in rows]
    assert len(losses) == 8
    assert losses[-1] < 0.7 * losses[0], losses
    # Training throughput is logged per epoch: a positive, finite rate.
    assert all(0 < float(row["patches_per_s"]) < 1e6 for row in rows), rows


def test_cosine_schedule_decays_the_learning_rate_to_zero(
    real_patches: PatchSet, tmp_path: Path
) -> None:
    from edge_asc.train.training import train_model

    config = TrainConfig(
        model="cdnn",
        width=0.0625,
        epochs=2,
        batch_size=16,
        learning_rate=1e-3,
        lr_schedule="cosine",
    )
    model = train_model(real_patches, None, 3, config, tmp_path, verbose=0)
    assert int(model.optimizer.iterations) > 0
    assert float(model.optimizer.learning_rate) < 1e-9  # the end of the half cosine
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_resume_after_an_interruption_gives_the_same_weights(
    real_patches: PatchSet, tmp_path: Path
) -> None:
    import keras

    from edge_asc.train.training import train_model

    config = TrainConfig(model="crnn", width=0.0625, epochs=3, batch_size=16, learning_rate=1e-3)
    straight = train_model(real_patches, None, 3, config, tmp_path / "straight", verbose=0)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt  # as if the machine stopped after two epochs

    with pytest.raises(KeyboardInterrupt):
        train_model(
            real_patches, None, 3, config, tmp_path / "resumed", verbose=0, callbacks=[Interrupt()]
        )
    assert (tmp_path / "resumed" / "checkpoint").is_dir()
    resumed = train_model(real_patches, None, 3, config, tmp_path / "resumed", verbose=0)
    with open(tmp_path / "resumed" / "history.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2"]
    differing = [
        w.path
        for w, a, b in zip(
            straight.weights, straight.get_weights(), resumed.get_weights(), strict=True
        )
        if not np.allclose(a, b, rtol=1e-5, atol=1e-6)
    ]
    assert not differing, differing
