"""The paper's training recipe for one spectrogram's model.

Random oversampling of the smaller classes, mixup of patch pairs (eqs. 1-4, lambda drawn from
a Beta distribution), KL-divergence loss with L2 on the kernels (eq. 22), Adam at 1e-4, batch
50, 100 epochs. The same code runs on a CPU, one GPU (with mixed precision and a prefetching
input pipeline) or several devices through ``tf.distribute``.

Determinism: every epoch's oversampling, order and mixup come from a generator seeded with
``(seed, epoch)``, so a run resumed from a checkpoint sees the epochs it would have seen.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are the paper's (section IV-C)."""

    model: str = "joint"
    width: float = 1.0
    epochs: int = 100
    batch_size: int = 50
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    l2: float = 1e-4
    mixup_alpha: float = 0.4
    oversample: bool = True
    seed: int = 0
    mixed_precision: str = "auto"
    strategy: str = "auto"

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "width": self.width > 0,
            "learning_rate": self.learning_rate > 0,
            "l2": self.l2 >= 0,
            "mixup_alpha": self.mixup_alpha >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training setting(s): {', '.join(bad)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
        if self.mixed_precision not in ("auto", "on", "off"):
            raise ValueError("mixed_precision must be auto, on or off")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in the run directory."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


STRATEGIES = ("auto", "default", "mirrored", "multiworker")

LR_SCHEDULES = ("constant", "cosine")
"""``constant``: the paper's fixed rate. ``cosine``: decayed to zero over the run along a
half cosine, which settles short CPU schedules (the last epochs stop jumping about)."""


@dataclass
class PatchSet:
    """Model inputs of one spectrogram kind over one split.

    Attributes
    ----------
    x : numpy.ndarray
        ``(n, bins, width)`` float32 normalised patches.
    y : numpy.ndarray
        ``(n,)`` int class index of each patch.
    clip : numpy.ndarray
        ``(n,)`` int index of the clip each patch came from (for per-clip averaging).
    """

    x: np.ndarray
    y: np.ndarray
    clip: np.ndarray

    def __len__(self) -> int:
        return int(self.y.size)


def epoch_indices(
    y: np.ndarray, n_classes: int, oversample: bool, rng: np.random.Generator
) -> np.ndarray:
    """One epoch's patch order, with smaller classes randomly oversampled to the largest."""
    if not oversample:
        return rng.permutation(y.size)
    groups = [np.flatnonzero(y == c) for c in range(n_classes)]
    target = max(g.size for g in groups)
    parts = [
        np.concatenate([g, rng.choice(g, target - g.size, replace=True)]) for g in groups if g.size
    ]
    return rng.permutation(np.concatenate(parts))


def mixup(
    x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mix each example with a random partner (eqs. 1-4): ``l*x1 + (1-l)*x2``, same for y.

    Pairs come from a permutation of the batch, so both mixes of a pair (lambda and
    1 - lambda) appear, as in the paper. ``alpha = 0`` turns mixup off.
    """
    if alpha <= 0 or len(x) < 2:
        return x, y
    partner = rng.permutation(len(x))
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    lam_x = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    return lam_x * x + (1 - lam_x) * x[partner], lam[:, None] * y + (1 - lam[:, None]) * y[partner]


def steps_per_epoch(y: np.ndarray, n_classes: int, config: TrainConfig) -> int:
    """Batches per epoch: the size :func:`epoch_indices` gives, over the batch size."""
    if config.oversample:
        counts = np.bincount(y, minlength=n_classes)
        n = int(counts.max()) * int(np.count_nonzero(counts))
    else:
        n = int(y.size)
    return max(1, -(-n // config.batch_size))


def epoch_batches(
    patches: PatchSet, n_classes: int, config: TrainConfig, epoch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches ``(x[..., None], soft labels)`` of one epoch, determined by (seed, epoch)."""
    rng = np.random.default_rng([config.seed, epoch])
    order = epoch_indices(patches.y, n_classes, config.oversample, rng)
    eye = np.eye(n_classes, dtype=np.float32)
    for start in range(0, order.size, config.batch_size):
        idx = np.sort(order[start : start + config.batch_size])  # sorted: faster gathers
        x, y = mixup(patches.x[idx], eye[patches.y[idx]], config.mixup_alpha, rng)
        yield x[..., None], y


def use_mixed_precision(setting: str) -> bool:
    """Mixed precision: ``auto`` turns it on when a GPU is visible."""
    import tensorflow as tf

    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "on"


def make_strategy(name: str):
    """The ``tf.distribute`` strategy a flag names.

    ``auto``: mirrored over all GPUs when there are several, else the default (one device).
    ``mirrored``: all GPUs, or every logical CPU when there is no GPU (how the tests run it).
    ``multiworker``: MultiWorkerMirroredStrategy, configured by the ``TF_CONFIG`` variable.
    """
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


class _EpochClock:
    """Tells the input pipeline which epoch Keras is starting (also after a resume), and
    reseeds the model's dropout from ``(seed, epoch)`` so a resumed epoch draws the same
    masks as an uninterrupted one."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def start(self, model, epoch: int) -> None:
        self.epoch = epoch
        for i, layer in enumerate(model._flatten_layers()):
            generator = getattr(layer, "seed_generator", None)
            if generator is not None:
                state = generator.state
                value = np.array([self.seed * 1_000_003 + epoch, i], dtype=state.dtype)
                state.assign(value)


def _learning_rate(config: TrainConfig, y: np.ndarray, n_classes: int):
    """Adam's learning rate: a number, or a schedule over the run's optimizer steps.

    A schedule follows the optimizer's step counter, which a resumed run restores with the
    checkpoint, so an interrupted run continues on the same curve.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    import keras

    total = config.epochs * steps_per_epoch(y, n_classes, config)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total)


def _throughput_callback(batch_size: int):
    """A callback that adds ``patches_per_s`` to each epoch's logs (history.csv, TensorBoard).

    It counts training steps only, from the first step's start to the last step's end, so
    validation is left out; the first epoch includes the graph's tracing.
    """
    import keras

    class Throughput(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = self.end = None
            self.steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            if self.start is None:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self.end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None and self.steps and self.end > self.start:
                logs["patches_per_s"] = self.steps * batch_size / (self.end - self.start)

    return Throughput()


def train_model(
    train: PatchSet,
    validation: PatchSet | None,
    n_classes: int,
    config: TrainConfig,
    out_dir: Path,
    verbose: int = 1,
    callbacks: Sequence[Any] = (),
):
    """Train one spectrogram's model; resumable from ``out_dir``.

    Parameters
    ----------
    train, validation : PatchSet
        Normalised patches; ``validation`` may be None (train on everything).
    n_classes : int
        Number of classes.
    config : TrainConfig
        Hyper-parameters.
    out_dir : Path
        Receives ``model.keras``, ``history.csv`` (loss, accuracy and training
        ``patches_per_s`` per epoch), TensorBoard ``logs/`` and, while
        training, ``checkpoint/`` (an interrupted run continues from its last epoch).
    verbose : int
        Keras progress output: 1 a progress bar, 2 one line per epoch, 0 nothing.
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks (after the built-in ones).

    Returns
    -------
    keras.Model
        The trained model (also saved as ``out_dir / "model.keras"``).
    """
    import keras
    import tensorflow as tf

    from edge_asc.train.models import build_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    mixed = use_mixed_precision(config.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    strategy = make_strategy(config.strategy)
    try:
        with strategy.scope():
            # Trained with a rolled GRU: quick to compile (the unrolled graph takes ~20 s more),
            # and cuDNN's kernel on a GPU. Export rebuilds it unrolled, with the same weights,
            # for builtin-only TFLite.
            extra = {"unroll": False} if config.model != "cdnn" else {}
            model = build_model(
                config.model,
                n_classes,
                width=config.width,
                l2=config.l2,
                input_shape=(*train.x.shape[1:], 1),
                **extra,
            )
            model.compile(
                optimizer=keras.optimizers.Adam(_learning_rate(config, train.y, n_classes)),
                loss=keras.losses.KLDivergence(),
                metrics=["accuracy"],
                jit_compile=False,  # XLA compiles for ~50 s on a CPU before the first step
            )
    finally:
        keras.mixed_precision.set_global_policy("float32")

    clock = _EpochClock(config.seed)
    shape = (None, *train.x.shape[1:], 1)

    def generator() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # Started lazily by Keras after a resume has set the clock; runs on epoch after epoch.
        epoch = clock.epoch
        while True:
            yield from epoch_batches(train, n_classes, config, epoch)
            epoch += 1

    dataset = tf.data.Dataset.from_generator(
        generator,
        output_signature=(
            tf.TensorSpec(shape, tf.float32),
            tf.TensorSpec((None, n_classes), tf.float32),
        ),
    ).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    validation_data = None
    if validation is not None and len(validation):
        eye = np.eye(n_classes, dtype=np.float32)
        validation_data = (validation.x[..., None], eye[validation.y])

    all_callbacks = [
        keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs=None: clock.start(model, epoch)
        ),
        keras.callbacks.BackupAndRestore(str(out_dir / "checkpoint")),
        _throughput_callback(config.batch_size),  # before the loggers, which write its value
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "logs"), write_graph=False),
        *callbacks,
    ]
    model.fit(
        dataset,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch(train.y, n_classes, config),
        shuffle=False,  # the generator shuffles, deterministically
        validation_data=validation_data,
        validation_batch_size=max(config.batch_size, 100),
        callbacks=all_callbacks,
        verbose=verbose,
    )
    final = out_dir / "model.keras"
    tmp = out_dir / ".model.tmp.keras"
    model.save(tmp)
    os.replace(tmp, final)
    return model


def predict_patches(model, patches: PatchSet, batch_size: int = 100) -> np.ndarray:
    """Patch posteriors ``(n, C)`` as float64."""
    if not len(patches):
        return np.zeros((0, model.output_shape[-1]))
    probs = model.predict(patches.x[..., None], batch_size=batch_size, verbose=0)
    return np.asarray(probs, dtype=np.float64)


def assemble_patches(
    spectrograms: Sequence[np.ndarray],
    labels: Sequence[int],
    norm,
    width: int = 128,
) -> PatchSet:
    """Cut, normalise and stack the patches of several clips (clip ``i`` keeps index ``i``)."""
    from edge_asc.features import cut_patches

    xs, ys, clips = [], [], []
    for i, (spec, label) in enumerate(zip(spectrograms, labels, strict=True)):
        patches = cut_patches(norm.apply(spec), width)
        xs.append(patches)
        ys.append(np.full(len(patches), label, dtype=np.int64))
        clips.append(np.full(len(patches), i, dtype=np.int64))
    bins = spectrograms[0].shape[0] if spectrograms else 0
    if not xs:
        return PatchSet(np.zeros((0, bins, width), np.float32), np.zeros(0, int), np.zeros(0, int))
    return PatchSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(clips))
