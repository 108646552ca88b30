"""From a training run to a model bundle, with the cost of quantization measured.

For every requested spectrogram, the run's Keras model is rebuilt as a builtin-only export
graph and converted in each quantization mode. Each conversion is run on the TFLite
interpreter over the run's validation clips (patch posteriors averaged per clip, as in
training's evaluation) and timed on single patches with one and two threads; the chosen
mode's models go into the bundle together with the whole table.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_asc.backends.onnx import OnnxModel
from edge_asc.backends.tflite import TFLiteModel
from edge_asc.bundle import (
    BUNDLE_SUFFIX,
    Manifest,
    Member,
    ModelSpec,
    OpenSet,
    Patch,
    Spectrogram,
    reference_outputs,
    write_bundle,
)
from edge_asc.bundle.common import SchemaViolation
from edge_asc.errors import EdgeAscError
from edge_asc.export.convert import QUANTIZATIONS, export_graph, to_tflite
from edge_asc.export.onnx_graph import to_onnx
from edge_asc.features import NormStats, parse_kinds
from edge_asc.train.cache import FeatureCache
from edge_asc.train.datasets import read_dataset
from edge_asc.train.evaluation import FUSION_RULES, clip_posteriors
from edge_asc.train.models import count_macs
from edge_asc.train.run import RunError, RunSpec, default_cache_dir, load_spec, versions
from edge_asc.train.training import PatchSet, assemble_patches

REPRESENTATIVE_PATCHES = 200
"""Training patches that calibrate int8 activation ranges (drawn with a fixed seed)."""


class ExportError(EdgeAscError):
    """An export that cannot be done as asked; one line."""


@dataclass
class ModeResult:
    """What one quantization mode of one spectrogram's model measured."""

    bytes: int
    accuracy: float | None
    agreement: float | None
    latency_ms_1: float
    latency_ms_2: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "bytes": self.bytes,
            "accuracy": self.accuracy,
            "agreement": self.agreement,
            "latency_ms_1_thread": self.latency_ms_1,
            "latency_ms_2_threads": self.latency_ms_2,
        }


def _clip_probs(probs: np.ndarray, patches: PatchSet, n_clips: int) -> np.ndarray:
    ids, clip = clip_posteriors(probs, patches.clip)
    full = np.full((n_clips, probs.shape[1]), 1.0 / probs.shape[1])
    full[ids] = clip
    return full


def _representative(
    spec: RunSpec, cache: FeatureCache, kind: str, norm: NormStats, seed: int = 0
) -> np.ndarray:
    index = read_dataset(spec.dataset, spec.root, **spec.dataset_options)
    train_ids = list(index.split(spec.fold).train)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(train_ids)[: max(1, REPRESENTATIVE_PATCHES // 2)]
    paths = [index.clips[i].path for i in chosen]
    cache.extract([kind], paths, progress=False)
    patches = assemble_patches([cache.load(kind, p) for p in paths], [0] * len(paths), norm)
    take = rng.permutation(len(patches))[:REPRESENTATIVE_PATCHES]
    return patches.x[np.sort(take)]


def export_run(
    run_dir: Path,
    out: Path,
    kinds: str | Sequence[str] | None = None,
    quantize: str = "int8",
    fusion: str = "prod",
    measure: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    verbose: bool = True,
    onnx: bool = True,
    sign: Path | None = None,
    open_set: Path | None = None,
) -> dict[str, dict[str, ModeResult]]:
    """Convert a run's models into one bundle and measure every quantization mode.

    Parameters
    ----------
    run_dir : Path
        A run directory written by ``edge-asc train``.
    out : Path
        The bundle to write (atomically).
    kinds : str or sequence of str, optional
        Spectrograms to export; all of the run's by default.
    quantize : str
        Mode of the models stored in the bundle, one of :data:`QUANTIZATIONS`.
    fusion : str
        Default fusion rule recorded in the bundle.
    measure : sequence of str, optional
        Modes to convert and measure for the table (default: all four; the stored mode is
        always measured).
    cache_dir : Path, optional
        Spectrogram cache.
    verbose : bool
        Print progress and the table.
    onnx : bool
        Also store each model as float32 ONNX (for ONNX Runtime's TensorRT / CUDA
        providers on a GPU), measured on the CPU like the TFLite modes (row ``onnx``).
        Both copies are run on a seeded reference patch and their outputs stored, so the
        device can check that the copy it runs computes what export measured.
    sign : Path, optional
        An Ed25519 private key (PEM) to sign the bundle with.
    open_set : Path, optional
        JSON with the fitted thresholds of the ``unknown`` answer (``threshold``, and
        optionally ``per_label``, ``method``, ``fitted``), as ``benchmarks/bench_open_set.py``
        writes it; stored in the manifest. Without it the runtime uses the documented default.

    Returns
    -------
    dict of str to dict of str to ModeResult
        ``{kind: {mode: result}}``.
    """
    import keras

    run_dir = Path(run_dir)
    spec = load_spec(run_dir)
    if quantize not in QUANTIZATIONS:
        raise ExportError(
            f"unknown quantization {quantize!r}; choose from {', '.join(QUANTIZATIONS)}"
        )
    if fusion not in FUSION_RULES:
        raise ExportError(f"unknown fusion rule {fusion!r}; choose from {', '.join(FUSION_RULES)}")
    chosen = spec.kinds if kinds is None else parse_kinds(kinds)
    missing = [k for k in chosen if k not in spec.kinds]
    if missing:
        raise ExportError(
            f"run {run_dir} has no {', '.join(missing)} model (it has: {', '.join(spec.kinds)})"
        )
    fitted = _open_set(open_set, spec.labels) if open_set is not None else None
    if fitted is not None and fitted.fitted.get("fusion", fusion) != fusion:
        raise ExportError(
            f"{open_set}: the thresholds were fitted for fusion {fitted.fitted['fusion']!r}; "
            f"export with --fusion {fitted.fitted['fusion']}"
        )
    modes = list(dict.fromkeys([*(measure or QUANTIZATIONS), quantize]))
    cache = FeatureCache(cache_dir or default_cache_dir(), spec.features)
    clips = json.loads((run_dir / "validation.json").read_text())
    paths = [Path(c["path"]) for c in clips]
    label_of = {name: i for i, name in enumerate(spec.labels)}
    y_true = np.array([label_of[c["label"]] for c in clips], dtype=int)
    if paths:
        cache.extract(chosen, paths, progress=verbose)

    members: dict[str, bytes] = {}
    entries: dict[str, Spectrogram] = {}
    patch_frames: dict[str, int] = {}
    table: dict[str, dict[str, ModeResult]] = {}
    for kind in chosen:
        model_path = run_dir / kind / "model.keras"
        if not model_path.is_file():
            raise RunError(f"{model_path} is missing: the run did not finish training {kind}")
        trained = keras.models.load_model(model_path, compile=False)
        graph = export_graph(trained)
        norm = NormStats.from_dict(json.loads((run_dir / kind / "norm.json").read_text()))
        frames = int(trained.input_shape[2])
        patch_frames[kind] = frames
        val = assemble_patches([cache.load(kind, p) for p in paths], list(y_true), norm, frames)
        reference = None
        if len(val):
            keras_probs = np.asarray(graph.predict(val.x[..., None], verbose=0), np.float64)
            reference = _clip_probs(keras_probs, val, len(paths))
        representative = _representative(spec, cache, kind, norm) if "int8" in modes else None
        table[kind] = {}
        for mode in modes:
            if verbose:
                print(f"[{kind}] converting to {mode} ...", flush=True)
            flatbuffer = to_tflite(graph, mode, representative)
            result = _measure(flatbuffer, val, reference, y_true, len(paths))
            table[kind][mode] = result
            if mode == quantize:
                members[f"{kind}.tflite"] = flatbuffer
        if onnx:
            if verbose:
                print(f"[{kind}] writing ONNX ...", flush=True)
            members[f"{kind}.onnx"] = to_onnx(trained)
            table[kind]["onnx"] = _measure(
                members[f"{kind}.onnx"], val, reference, y_true, len(paths), OnnxModel
            )
        keras_accuracy = (
            float(np.mean(reference.argmax(1) == y_true)) if reference is not None else None
        )
        tflite_name, onnx_name = f"{kind}.tflite", f"{kind}.onnx"
        copies = {"tflite": TFLiteModel(members[tflite_name])}
        if onnx:
            copies["onnx"] = OnnxModel(members[onnx_name])
        entries[kind] = Spectrogram(
            kind=kind,
            tflite=Member.of(tflite_name, members[tflite_name]),
            onnx=Member.of(onnx_name, members[onnx_name]) if onnx else None,
            features=spec.features.resolved(),
            norm=norm,
            model=ModelSpec(
                name=spec.training.model,
                width=spec.training.width,
                params=int(trained.count_params()),
                macs_per_patch=int(count_macs(trained)),
            ),
            accuracy={
                "keras": keras_accuracy,
                "tflite": table[kind][quantize].accuracy,
                "agreement_with_keras": table[kind][quantize].agreement,
                "validation_clips": len(paths),
            },
            reference=reference_outputs(copies, spec.features.n_bins, frames),
        )
    if len(set(patch_frames.values())) != 1:
        raise ExportError(f"the run's models take patches of different widths: {patch_frames}")
    manifest = Manifest(
        labels=tuple(spec.labels),
        default_fusion=fusion,
        quantization=quantize,
        patch=Patch(bins=spec.features.n_bins, frames=next(iter(patch_frames.values()))),
        spectrograms=entries,
        evaluation={
            f"{kind}/{mode}": r.to_dict()
            for kind, modes_ in table.items()
            for mode, r in modes_.items()
        },
        provenance={
            "run": str(run_dir.resolve()),
            "dataset": spec.dataset,
            "root": spec.root,
            "fold": spec.fold,
            "model": spec.training.model,
            "width": spec.training.width,
            "epochs": spec.training.epochs,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
        },
        open_set=fitted,
    )
    write_bundle(out, manifest, members, signing_key=sign)
    if verbose:
        print(format_table(table, quantize))
        print(f"wrote {out}")
    return table


def _open_set(path: Path, labels: Sequence[str]) -> OpenSet:
    """The fitted thresholds in ``path``, checked as the loader will check them."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ExportError(f"{path} is not JSON: {exc}") from None
    try:
        return OpenSet.from_dict(data, labels)
    except SchemaViolation as exc:
        raise ExportError(f"{path}: {exc}") from None


def _measure(
    flatbuffer: bytes,
    val: PatchSet,
    reference: np.ndarray | None,
    y_true: np.ndarray,
    n_clips: int,
    runtime: type = TFLiteModel,
) -> ModeResult:
    """Size, clip accuracy, agreement with Keras and latency of one converted model."""
    accuracy = agreement = None
    if reference is not None:
        probs = _clip_probs(runtime(flatbuffer).predict(val.x), val, n_clips)
        accuracy = float(np.mean(probs.argmax(1) == y_true))
        agreement = float(np.mean(probs.argmax(1) == reference.argmax(1)))
    return ModeResult(
        bytes=len(flatbuffer),
        accuracy=accuracy,
        agreement=agreement,
        latency_ms_1=1e3 * runtime(flatbuffer, threads=1).latency(),
        latency_ms_2=1e3 * runtime(flatbuffer, threads=2).latency(),
    )


def format_table(table: dict[str, dict[str, ModeResult]], stored: str) -> str:
    """The per-mode measurements as a text table (``*`` marks the stored mode)."""
    lines = [
        f"{'spectrogram':12s} {'mode':9s} {'size KiB':>9s} {'vs f32':>7s} {'clip acc %':>10s} "
        f"{'agree %':>8s} {'1 thr ms':>9s} {'2 thr ms':>9s}"
    ]
    for kind, modes in table.items():
        base = modes.get("float32")
        for mode, r in modes.items():
            ratio = f"{base.bytes / r.bytes:6.2f}x" if base else "      -"
            acc = f"{100 * r.accuracy:10.1f}" if r.accuracy is not None else f"{'-':>10s}"
            agree = f"{100 * r.agreement:8.1f}" if r.agreement is not None else f"{'-':>8s}"
            mark = "*" if mode == stored else " "
            lines.append(
                f"{kind:12s} {mode + mark:9s} {r.bytes / 1024:9.1f} {ratio} {acc} {agree} "
                f"{r.latency_ms_1:9.2f} {r.latency_ms_2:9.2f}"
            )
    return "\n".join(lines)


def default_bundle_path(run_dir: Path, quantize: str) -> Path:
    """``RUN_DIR/model-<mode>.easc``."""
    return Path(run_dir) / f"model-{quantize}{BUNDLE_SUFFIX}"
