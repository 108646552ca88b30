"""A training run directory: what ``edge-asc train`` writes and ``edge-asc evaluate`` reads.

Layout::

    RUN_DIR/
      run.json                 dataset, split, labels, feature and training settings, versions
      <kind>/model.keras       one model per spectrogram (Keras format: no pickle)
      <kind>/norm.json         normalisation statistics from the training split only
      <kind>/history.csv       per-epoch loss, accuracy, patches/s; <kind>/logs/ for TensorBoard
      validation.json          the validation clips (path, label, device)
      posteriors.npz           clip posteriors of every spectrogram on the validation clips
      metrics.json             clip accuracy, class/device accuracy, log loss, confusion, fusion
      confusion_<system>.csv|png

A run interrupted part-way is resumed by running the same command again: cached spectrograms
are reused, finished spectrogram models are kept, and the one in progress continues from its
last epoch checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_asc import __version__
from edge_asc.decision import UNKNOWN as BACKGROUND_LABEL
from edge_asc.errors import EdgeAscError
from edge_asc.features import FeatureConfig, NormStats, parse_kinds
from edge_asc.files import atomic_output
from edge_asc.train.cache import FeatureCache
from edge_asc.train.datasets import DatasetIndex, read_dataset
from edge_asc.train.evaluation import (
    FUSION_RULES,
    KIND_NAMES,
    ClipMetrics,
    clip_posteriors,
    format_paper_table,
    fusion_combinations,
    fusion_report,
    metrics_table,
    plot_confusion,
    write_confusion_csv,
)
from edge_asc.train.training import PatchSet, TrainConfig, assemble_patches

RUN_SCHEMA = 1


class RunError(EdgeAscError):
    """A run directory that cannot be used as asked; one line."""


def default_cache_dir() -> Path:
    """Where spectrograms are cached unless told otherwise (shared between runs)."""
    env = os.environ.get("EDGE_ASC_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-asc"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (no half-written file on failure)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


def versions() -> dict[str, str]:
    """Versions of what produced a run or a bundle (for provenance)."""
    import tensorflow as tf

    return {
        "edge_asc": __version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


@dataclass
class RunSpec:
    """Everything that defines a run; stored as ``run.json``."""

    dataset: str
    root: str
    fold: int | None
    kinds: tuple[str, ...]
    labels: list[str]
    features: FeatureConfig
    training: TrainConfig
    dataset_options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema": RUN_SCHEMA,
            "dataset": self.dataset,
            "root": self.root,
            "fold": self.fold,
            "kinds": list(self.kinds),
            "labels": list(self.labels),
            "features": self.features.to_dict(),
            "training": self.training.to_dict(),
            "dataset_options": self.dataset_options,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        if data.get("schema") != RUN_SCHEMA:
            raise RunError(f"run.json has schema {data.get('schema')!r}, expected {RUN_SCHEMA}")
        return cls(
            dataset=data["dataset"],
            root=data["root"],
            fold=data["fold"],
            kinds=tuple(data["kinds"]),
            labels=list(data["labels"]),
            features=FeatureConfig.from_dict(data["features"]),
            training=TrainConfig.from_dict(data["training"]),
            dataset_options=dict(data.get("dataset_options", {})),
        )


def load_spec(run_dir: Path) -> RunSpec:
    """Read ``run.json`` of a run directory."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a training run (no run.json)")
    try:
        return RunSpec.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path} is unreadable: {exc}") from None


def _spectrograms(cache: FeatureCache, kind: str, index: DatasetIndex, ids: Sequence[int]):
    return [cache.load(kind, index.clips[i].path) for i in ids]


def _patches(
    cache: FeatureCache,
    kind: str,
    index: DatasetIndex,
    ids: Sequence[int],
    norm: NormStats,
    hop: int | None = None,
) -> PatchSet:
    labels = [index.label_index(index.clips[i]) for i in ids]
    return assemble_patches(_spectrograms(cache, kind, index, ids), labels, norm, hop=hop)


def train_run(
    out: Path,
    dataset: str,
    root: Path,
    kinds: str | Sequence[str],
    training: TrainConfig,
    features: FeatureConfig | None = None,
    fold: int | None = 1,
    cache_dir: Path | None = None,
    workers: int | None = None,
    dataset_options: dict[str, Any] | None = None,
    verbose: int = 1,
    callbacks: Sequence[Any] = (),
) -> dict[str, ClipMetrics]:
    """Extract features, train one model per spectrogram, evaluate and fuse.

    In a multi-worker job (``training.strategy == "multiworker"``) every worker runs this
    with the same arguments; only the chief writes ``out`` and evaluates, the others train
    their share and write nothing there (they read the chief's ``checkpoint/`` on a restart,
    so ``out`` must be on storage every worker sees).

    Parameters
    ----------
    out : Path
        Run directory (created; an existing run with the same settings is resumed).
    dataset, root : str, Path
        Dataset reader name and its root folder (see :mod:`edge_asc.train.datasets`).
    kinds : str or sequence of str
        Spectrograms to train models for.
    training : TrainConfig
        Model and optimisation settings.
    features : FeatureConfig, optional
        Spectrogram settings (the defaults otherwise).
    fold : int or None
        Official fold to validate on; ``None`` trains on every clip (no validation).
    cache_dir : Path, optional
        Spectrogram cache (default :func:`default_cache_dir`).
    workers : int, optional
        Processes for feature extraction.
    dataset_options : dict, optional
        Extra arguments of the dataset reader.
    verbose : int
        Keras progress output level.
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks for every spectrogram's training.

    Returns
    -------
    dict of str to ClipMetrics
        Validation metrics per spectrogram and fusion (empty without validation clips, and
        on workers other than the chief).
    """
    from edge_asc.train.training import train_model, worker_role

    chief = worker_role(training.strategy).is_chief

    out = Path(out)
    features = features or FeatureConfig()
    index = read_dataset(dataset, root, **(dataset_options or {}))
    split = index.split(fold)
    spec = RunSpec(
        dataset=dataset,
        root=str(Path(root).resolve()),
        fold=fold,
        kinds=parse_kinds(kinds),
        labels=list(index.labels),
        features=features,
        training=training,
        dataset_options=dict(dataset_options or {}),
    )
    run_json = out / "run.json"
    if chief and run_json.is_file():
        previous = json.loads(run_json.read_text())
        try:  # settings added since that run was made take their defaults
            previous = {**previous, **RunSpec.from_dict(previous).to_dict()}
        except (RunError, KeyError, TypeError, ValueError):
            pass
        current = spec.to_dict()
        changed = [k for k in current if previous.get(k) != current[k]]
        if changed:
            raise RunError(
                f"{out} holds a run with other settings ({', '.join(changed)}); "
                "choose another --out to start a new run"
            )
    if chief:
        out.mkdir(parents=True, exist_ok=True)
        write_json(run_json, {**spec.to_dict(), "versions": versions()})
        write_json(
            out / "validation.json",
            [
                {
                    "path": str(index.clips[i].path),
                    "label": index.clips[i].label,
                    "device": index.clips[i].device,
                }
                for i in split.test
            ],
        )

    cache = FeatureCache(cache_dir or default_cache_dir(), features)
    paths = [index.clips[i].path for i in (*split.train, *split.test)]
    cache.extract(spec.kinds, paths, workers=workers, progress=verbose > 0)

    # Decided once, before any training: every worker of a job must train the same kinds.
    todo = [
        kind
        for kind in spec.kinds
        if not ((out / kind / "model.keras").is_file() and (out / kind / "norm.json").is_file())
    ]  # the others finished in an earlier, interrupted invocation
    for kind in todo:
        kind_dir = out / kind
        if chief:
            kind_dir.mkdir(exist_ok=True)
        norm = cache.norm_stats(kind, [index.clips[i].path for i in split.train])
        train_set = _patches(cache, kind, index, split.train, norm, training.patch_hop)
        val_set = _patches(cache, kind, index, split.test, norm) if split.test else None
        if verbose:
            print(
                f"[{kind}] {len(train_set)} training patches, "
                f"{len(val_set) if val_set else 0} validation patches"
            )
        train_model(
            train_set,
            val_set,
            len(index.labels),
            training,
            kind_dir,
            verbose=verbose,
            callbacks=callbacks,
            background_class=(
                index.labels.index(BACKGROUND_LABEL) if BACKGROUND_LABEL in index.labels else None
            ),
        )
        if chief:
            write_json(kind_dir / "norm.json", norm.to_dict())

    if not chief:
        return {}
    if not split.test:
        write_json(out / "metrics.json", {})
        return {}
    return evaluate_run(out, cache_dir=cache_dir, workers=workers, verbose=verbose)


def evaluate_run(
    run_dir: Path,
    rules: Sequence[str] = FUSION_RULES,
    cache_dir: Path | None = None,
    workers: int | None = None,
    verbose: int = 1,
) -> dict[str, ClipMetrics]:
    """Evaluate a run's models on its validation clips, as the paper does.

    Patch posteriors are averaged per clip (eq. 18); every spectrogram is scored alone and
    in the paper's Table 2 combinations (plus all trained spectrograms together) under each
    fusion rule. Writes ``posteriors.npz``, ``metrics.json`` and confusion matrices, and
    prints a table shaped like the paper's.
    """
    import keras

    run_dir = Path(run_dir)
    spec = load_spec(run_dir)
    unknown = [r for r in rules if r not in FUSION_RULES]
    if unknown:
        raise RunError(f"unknown fusion rule(s) {', '.join(unknown)}; valid: mean, prod, max")
    clips = json.loads((run_dir / "validation.json").read_text())
    if not clips:
        raise RunError(f"{run_dir} was trained on every clip; it has no validation clips")
    cache = FeatureCache(cache_dir or default_cache_dir(), spec.features)
    paths = [Path(c["path"]) for c in clips]
    cache.extract(spec.kinds, paths, workers=workers, progress=verbose > 0)
    label_of = {name: i for i, name in enumerate(spec.labels)}
    y_true = np.array([label_of[c["label"]] for c in clips])
    devices = [c.get("device") for c in clips]
    devices_or_none = devices if any(d is not None for d in devices) else None

    per_kind: dict[str, np.ndarray] = {}
    for kind in spec.kinds:
        model_path = run_dir / kind / "model.keras"
        if not model_path.is_file():
            raise RunError(f"{model_path} is missing: the run did not finish training {kind}")
        model = keras.models.load_model(model_path, compile=False)
        norm = NormStats.from_dict(json.loads((run_dir / kind / "norm.json").read_text()))
        patches = assemble_patches(
            [cache.load(kind, p) for p in paths], list(y_true), norm, model.input_shape[2]
        )
        probs = model.predict(patches.x[..., None], batch_size=100, verbose=0)
        ids, clip_probs = clip_posteriors(np.asarray(probs, np.float64), patches.clip)
        full = np.full((len(clips), len(spec.labels)), 1.0 / len(spec.labels))
        full[ids] = clip_probs  # a clip too short for one patch stays uniform
        per_kind[kind] = full

    combos = [tuple(c) for c in fusion_combinations(spec.kinds)]
    everything = tuple(k for k in KIND_NAMES if k in spec.kinds)
    if len(everything) > 1 and set(everything) not in [set(c) for c in combos]:
        combos.append(everything)
    report = fusion_report(
        per_kind, y_true, spec.labels, rules=rules, devices=devices_or_none, combinations=combos
    )
    with atomic_output(run_dir / "posteriors.npz") as tmp:
        np.savez(tmp, y_true=y_true, **per_kind)
    write_json(
        run_dir / "metrics.json",
        {
            "evaluated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "n_clips": len(clips),
            "systems": {name: m.to_dict() for name, m in report.items()},
        },
    )
    best = max(report, key=lambda name: report[name].accuracy)
    for name in {*spec.kinds, best}:
        slug = name.replace("/", "-").replace("+", "_")
        write_confusion_csv(run_dir / f"confusion_{slug}.csv", report[name].confusion, spec.labels)
        plot_confusion(
            run_dir / f"confusion_{slug}.png", report[name].confusion, spec.labels, title=name
        )
    if verbose:
        fold = "all" if spec.fold is None else spec.fold
        title = (
            f"{spec.dataset} fold {fold}, {spec.training.model} width "
            f"{spec.training.width}: clip accuracy (%)"
        )
        print(format_paper_table(metrics_table(report), title))
    return report
