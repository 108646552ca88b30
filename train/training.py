"""The paper's training recipe for one spectrogram's model.

Random oversampling of the smaller classes, mixup of patch pairs (eqs. 1-4, lambda drawn from
a Beta distribution), KL-divergence loss with L2 on the kernels (eq. 22), Adam at 1e-4, batch
50, 100 epochs. The same code runs on a CPU, one GPU (with mixed precision and a prefetching
input pipeline), several GPUs or several machines through ``tf.distribute``: each global
batch is planned once from ``(seed, epoch)`` and every replica gathers only its rows of it, so
the maths is that of one device (deploy/cluster/README.md).

Determinism: every epoch's oversampling, order and mixup come from a generator seeded with
``(seed, epoch)``, so a run resumed from a checkpoint sees the epochs it would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_asc.errors import EdgeAscError
from edge_asc.train import augment
from edge_asc.train.augment import Augmentation


class TrainingInterrupted(EdgeAscError):
    """Training stopped short of its steps (a lost worker); rerunning resumes it. One line."""


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
    patch_hop: int = 128
    augment: bool = False

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "width": self.width > 0,
            "learning_rate": self.learning_rate > 0,
            "l2": self.l2 >= 0,
            "mixup_alpha": self.mixup_alpha >= 0,
            "patch_hop": self.patch_hop >= 1,
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
    mean, std : numpy.ndarray or None
        ``(bins,)`` the normalisation of ``x`` (augmentation works in dB through them).
    """

    x: np.ndarray
    y: np.ndarray
    clip: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

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


@dataclass(frozen=True)
class BatchPlan:
    """One global batch, as indices: which patches, their mixup partners and weights.

    Attributes
    ----------
    idx : numpy.ndarray
        ``(b,)`` patch indices (sorted: faster gathers).
    partner : numpy.ndarray or None
        ``(b,)`` positions within the batch of each row's mixup partner; None: no mixup.
    lam : numpy.ndarray or None
        ``(b,)`` float32 mixup weights of the rows themselves.
    augmentation : Augmentation or None
        Per-position draws of :mod:`edge_asc.train.augment`; None: no augmentation.
    """

    idx: np.ndarray
    partner: np.ndarray | None
    lam: np.ndarray | None
    augmentation: Augmentation | None = None

    def rows(self, part: int, parts: int) -> np.ndarray:
        """Positions of replica ``part``'s rows when the batch is split ``parts`` ways."""
        return np.array_split(np.arange(self.idx.size), parts)[part]

    def gather(
        self, patches: PatchSet, eye: np.ndarray, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inputs ``x[..., None]`` and soft labels of ``rows`` (all rows by default).

        Every row is computed on its own, so a replica's share of a batch holds exactly the
        values the same rows have when one process computes the whole batch.
        """
        rows = np.arange(self.idx.size) if rows is None else rows
        own = self.idx[rows]
        x, y = self._inputs(patches, rows), eye[patches.y[own]]
        if self.partner is not None and self.lam is not None:
            other = self.idx[self.partner[rows]]
            lam = self.lam[rows]
            lam_x = lam.reshape((-1,) + (1,) * (x.ndim - 1))
            x = lam_x * x + (1 - lam_x) * self._inputs(patches, self.partner[rows])
            y = lam[:, None] * y + (1 - lam[:, None]) * eye[patches.y[other]]
        return x[..., None], y

    def _inputs(self, patches: PatchSet, positions: np.ndarray) -> np.ndarray:
        """The (augmented) patches at batch ``positions``."""
        x = patches.x[self.idx[positions]]
        if self.augmentation is None:
            return x
        if patches.mean is None or patches.std is None:
            raise ValueError("augmentation needs the patches' normalisation (mean and std)")
        return augment.apply(x, positions, self.augmentation, patches.x, patches.mean, patches.std)


def epoch_plan(
    y: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    epoch: int,
    background_class: int | None = None,
    shape: tuple[int, int] = (128, 128),
) -> list[BatchPlan]:
    """One epoch's global batches as index plans, determined by ``(seed, epoch)``.

    Only indices, mixup weights and augmentation draws are made here (cheap); the patches are
    gathered, augmented and mixed by whoever consumes a plan, each worker for its own rows
    only. With ``config.augment``, patches of ``background_class`` (if given) are mixed into
    the others at random ratios.
    """
    rng = np.random.default_rng([config.seed, epoch])
    order = epoch_indices(y, n_classes, config.oversample, rng)
    pool = (
        np.flatnonzero(y == background_class)
        if background_class is not None
        else np.zeros(0, dtype=np.int64)
    )
    plans = []
    for start in range(0, order.size, config.batch_size):
        idx = np.sort(order[start : start + config.batch_size])
        partner, lam = None, None
        if config.mixup_alpha > 0 and idx.size >= 2:
            # The draws of mixup(), in its order: partners, then lambdas.
            partner = rng.permutation(idx.size)
            lam = rng.beta(config.mixup_alpha, config.mixup_alpha, size=idx.size)
            lam = lam.astype(np.float32)
        drawn = augment.draw(rng, y[idx], pool, background_class, shape) if config.augment else None
        plans.append(BatchPlan(idx, partner, lam, drawn))
    return plans


def epoch_batches(
    patches: PatchSet,
    n_classes: int,
    config: TrainConfig,
    epoch: int,
    background_class: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches ``(x[..., None], soft labels)`` of one epoch, determined by (seed, epoch)."""
    eye = np.eye(n_classes, dtype=np.float32)
    shape = patches.x.shape[1:]
    for plan in epoch_plan(patches.y, n_classes, config, epoch, background_class, shape):
        yield plan.gather(patches, eye)


def replica_batches(
    patches: PatchSet,
    n_classes: int,
    config: TrainConfig,
    first_epoch: int,
    replicas: int = 1,
    mine: Sequence[int] = (0,),
    background_class: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless per-replica batches from ``first_epoch`` on: this input pipeline's shard.

    Every global batch of :func:`epoch_plan` is split into ``replicas`` parts; the parts of
    the replicas in ``mine`` are yielded in that order (a multi-worker job's worker
    gathers and mixes only its own rows). ``replicas=1`` yields the whole batches.
    """
    eye = np.eye(n_classes, dtype=np.float32)
    shape = patches.x.shape[1:]
    epoch = first_epoch
    while True:
        for plan in epoch_plan(patches.y, n_classes, config, epoch, background_class, shape):
            for part in mine:
                yield plan.gather(patches, eye, plan.rows(part, replicas))
        epoch += 1


def use_mixed_precision(setting: str) -> bool:
    """Mixed precision: ``auto`` turns it on when a GPU is visible."""
    import tensorflow as tf

    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "on"


_MULTI_WORKER: list[Any] = []
"""The process's MultiWorkerMirroredStrategy, made once: TF configures collective ops when
its context starts, so a second one (the next spectrogram's model) could not be made."""


def make_strategy(name: str):
    """The ``tf.distribute`` strategy a flag names.

    ``auto``: mirrored over all GPUs when there are several, else the default (one device).
    ``mirrored``: all GPUs, or every logical CPU when there is no GPU (how the tests run it).
    ``multiworker``: MultiWorkerMirroredStrategy, configured by the ``TF_CONFIG`` variable;
    made before anything starts TF's context (which fixes the collective ops), and reused.
    """
    import tensorflow as tf

    if name == "multiworker":
        if not _MULTI_WORKER:
            _MULTI_WORKER.append(tf.distribute.MultiWorkerMirroredStrategy())
        return _MULTI_WORKER[0]
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in a multi-worker job, from ``TF_CONFIG``.

    Attributes
    ----------
    index : int
        Position among all tasks (the chief is 0).
    count : int
        Number of tasks (chief included).
    """

    index: int = 0
    count: int = 1

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run directory."""
        return self.index == 0


def worker_role(strategy: str = "multiworker") -> WorkerRole:
    """Which worker this process is, from ``TF_CONFIG`` (the chief when not multi-worker).

    The chief is the ``chief`` task when the cluster names one, else ``worker`` 0 (TF's
    convention); the other tasks follow in cluster order.

    Raises
    ------
    ValueError
        If ``TF_CONFIG`` is set but unreadable.
    """
    raw = os.environ.get("TF_CONFIG", "")
    if strategy != "multiworker" or not raw.strip():
        return WorkerRole()
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        order = [("chief", i) for i in range(len(cluster.get("chief", [])))]
        order += [("worker", i) for i in range(len(cluster.get("worker", [])))]
        return WorkerRole(order.index((task["type"], int(task["index"]))), len(order))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"TF_CONFIG is not a usable cluster spec: {exc}") from None


def _whole_epochs_callback(steps: int, backup_dir: Path):
    """A callback that stops a run whose epoch ended short of its steps, before the backup.

    When a peer dies, TF aborts the collective ops and Keras takes the failed step for the
    end of the input: ``fit`` would close the epoch early, back it up as complete and carry
    on, so the surviving chief would save a half-trained model and exit 0. This raises
    instead, ahead of the backup callback, leaving the last complete backup for a restart.
    """
    import keras

    class WholeEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.done = 0

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1

        def on_epoch_end(self, epoch, logs=None):
            if self.done < steps:
                raise TrainingInterrupted(
                    f"epoch {epoch + 1} stopped after {self.done} of {steps} steps (a worker "
                    f"lost?); run the same command again to resume from {backup_dir}"
                )

    return WholeEpochs()


def _backup_callback(backup_dir: Path, chief: bool):
    """BackupAndRestore that is safe with several workers and with SIGKILL.

    Keras's own callback has every worker write the same files, and a kill during a save
    leaves a torn pair of weights and epoch. Here only the chief writes; each backup goes to
    a fresh ``epoch-NNNN`` folder and ``latest`` (replaced atomically) names it, so a reader
    sees either the previous complete backup or the new one. Every worker restores from the
    chief's folder, so ``backup_dir`` must be on storage all workers see.
    """
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        def __init__(self) -> None:
            super().__init__(str(backup_dir), delete_checkpoint=chief, double_checkpoint=False)

        def _load_model(self) -> None:
            pointer = backup_dir / "latest"
            if not pointer.is_file():
                return
            state = backup_dir / pointer.read_text().strip()
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(str(state / "model.weights.h5"))
            meta = json.loads((state / "training.json").read_text())
            self.model._initial_epoch = int(meta["epoch"])

        def _save_model(self) -> None:
            if not chief:
                return
            name = f"epoch-{self._current_epoch:04d}"
            state = backup_dir / name
            if state.exists():
                shutil.rmtree(state)
            state.mkdir(parents=True)
            self.model.save_weights(str(state / "model.weights.h5"))
            (state / "training.json").write_text(json.dumps({"epoch": self._current_epoch}))
            tmp = backup_dir / ".latest.tmp"
            tmp.write_text(name + "\n")
            os.replace(tmp, backup_dir / "latest")
            for old in backup_dir.glob("epoch-*"):
                if old.name != name:
                    shutil.rmtree(old, ignore_errors=True)

    return Backup()


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


def _synchronize_batch_norm(model, enabled: bool) -> list:
    """Turn on ``synchronized`` batch statistics in every BatchNormalization layer."""
    import keras

    if not enabled:
        return []
    layers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in layers:
        layer.synchronized = True
    return layers


@contextlib.contextmanager
def _keras_multi_worker_fixes(model, shape: tuple, n_classes: int) -> Iterator[None]:
    """Work around Keras 3's two breakages of ``fit`` under MultiWorkerMirroredStrategy.

    Seen with Keras 3.15 and TF 2.21 (tensorflow/tensorflow#72388); without these, every
    multi-worker ``fit`` fails before its first step:

    * ``fit`` and ``evaluate`` take a batch from the iterator and ``strategy.reduce`` it
      only to learn its shapes, which the strategy cannot do for a nested batch ("Attempt to
      convert a value (PerReplica...)"). The model is built from the known shapes instead.
    * each step's logs (scalar loss and metrics) are reduced across workers with ``axis=0``
      ("Invalid reduction dimension 0 for input with 0 dimensions"); here they are averaged
      over replicas with ``axis=None``, which is what the logs mean.

    Gradients are unaffected: the optimizer all-reduces them through the strategy itself.
    The patch of Keras's module function lasts for the ``with`` block only.
    """
    import keras
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    example = (np.zeros((1, *shape[1:]), np.float32), np.zeros((1, n_classes), np.float32), None)
    build = model._maybe_symbolic_build
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(
        data_batch=example if data_batch is None else data_batch
    )
    original = keras_tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    keras_tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        keras_tf_trainer.reduce_per_replica = original
        del model._maybe_symbolic_build


def train_model(
    train: PatchSet,
    validation: PatchSet | None,
    n_classes: int,
    config: TrainConfig,
    out_dir: Path,
    verbose: int = 1,
    callbacks: Sequence[Any] = (),
    background_class: int | None = None,
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
    background_class : int, optional
        Class of non-target audio, mixed into the other classes' patches when
        ``config.augment`` is on.

    Returns
    -------
    keras.Model
        The trained model (also saved as ``out_dir / "model.keras"``).
    """
    import keras
    import tensorflow as tf

    from edge_asc.train.models import build_model

    out_dir = Path(out_dir)
    role = worker_role(config.strategy)
    if role.is_chief:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_dir = out_dir
    else:  # logs go to scratch; the chief's checkpoint/ is read on a restart
        write_dir = Path(tempfile.mkdtemp(prefix=f"edge-asc-worker{role.index}-"))
    strategy = make_strategy(config.strategy)  # first: multiworker must precede TF's context
    keras.utils.set_random_seed(config.seed)
    mixed = use_mixed_precision(config.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
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
            # Batch statistics over the global batch, not each replica's share: the same
            # maths as one process, and the same moving averages on every worker.
            synced = _synchronize_batch_norm(model, strategy.num_replicas_in_sync > 1)
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
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context=None):
        # One input pipeline per worker; it gathers and mixes only its replicas' rows of each
        # global batch (its shard), so no worker does another's input work.
        pipelines = context.num_input_pipelines if context is not None else 1
        pipeline = context.input_pipeline_id if context is not None else 0
        local = replicas // pipelines
        mine = range(pipeline * local, (pipeline + 1) * local)

        def generator() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            # Started lazily by Keras after a resume has set the clock; runs on and on.
            yield from replica_batches(
                train, n_classes, config, clock.epoch, replicas, mine, background_class
            )

        dataset = tf.data.Dataset.from_generator(
            generator,
            output_signature=(
                tf.TensorSpec(shape, tf.float32),
                tf.TensorSpec((None, n_classes), tf.float32),
            ),
        )
        options = tf.data.Options()
        # Sharded above, by rows of each batch: TF's auto-sharding must not shard again.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

    if replicas > 1 or role.count > 1:
        if config.batch_size < replicas:
            raise ValueError(f"batch_size must be at least the {replicas} replicas in sync")
        dataset = strategy.distribute_datasets_from_function(dataset_fn)
    else:
        dataset = dataset_fn()

    validation_data = None
    if validation is not None and len(validation):
        eye = np.eye(n_classes, dtype=np.float32)
        validation_data = (validation.x[..., None], eye[validation.y])

    steps = steps_per_epoch(train.y, n_classes, config)
    all_callbacks = [
        keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs=None: clock.start(model, epoch)
        ),
        _whole_epochs_callback(steps, out_dir / "checkpoint"),  # before the backup
        _backup_callback(out_dir / "checkpoint", role.is_chief),
        _throughput_callback(config.batch_size),  # before the loggers, which write its value
        keras.callbacks.CSVLogger(str(write_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(write_dir / "logs"), write_graph=False),
        *callbacks,
    ]
    fixes = (
        _keras_multi_worker_fixes(model, shape, n_classes)
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        else contextlib.nullcontext()
    )
    try:
        with fixes:
            model.fit(
                dataset,
                epochs=config.epochs,
                steps_per_epoch=steps,
                shuffle=False,  # the generator shuffles, deterministically
                validation_data=validation_data,
                validation_batch_size=max(config.batch_size, 100),
                callbacks=all_callbacks,
                verbose=verbose,
            )
        for layer in synced:  # saved as one process would have (no strategy when loaded)
            layer.synchronized = False
        if role.is_chief:
            tmp = out_dir / ".model.tmp.keras"
            model.save(tmp)
            os.replace(tmp, out_dir / "model.keras")
    finally:
        if not role.is_chief:
            shutil.rmtree(write_dir, ignore_errors=True)
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
    hop: int | None = None,
) -> PatchSet:
    """Cut, normalise and stack the patches of several clips (clip ``i`` keeps index ``i``).

    ``hop`` below ``width`` cuts overlapping patches (training's random time shift).
    """
    from edge_asc.features import cut_patches

    xs, ys, clips = [], [], []
    for i, (spec, label) in enumerate(zip(spectrograms, labels, strict=True)):
        patches = cut_patches(norm.apply(spec), width, hop)
        xs.append(patches)
        ys.append(np.full(len(patches), label, dtype=np.int64))
        clips.append(np.full(len(patches), i, dtype=np.int64))
    bins = spectrograms[0].shape[0] if spectrograms else 0
    if not xs:
        return PatchSet(np.zeros((0, bins, width), np.float32), np.zeros(0, int), np.zeros(0, int))
    return PatchSet(
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(clips),
        np.asarray(norm.mean, dtype=np.float64),
        np.asarray(norm.std, dtype=np.float64),
    )
