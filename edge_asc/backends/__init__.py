"""Running a bundle's models: TFLite on the CPU, ONNX Runtime (TensorRT, CUDA) on a GPU.

:func:`open_model` picks the backend; both give a :class:`PatchModel`, so the engine does not
care which one it drives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_asc.backends.base import BackendError, PatchModel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edge_asc.bundle import Bundle, BundleModel

BACKENDS: tuple[str, ...] = ("auto", "tflite", "onnx")
"""``--backend`` choices: ``auto`` is the faster of the two the bundle and the machine allow
(see :func:`choose_backend`)."""

CLEAR_MARGIN = 1.6
"""On a CPU, ONNX Runtime is chosen unless the export measured it slower than this multiple of
the TFLite model's time per patch. In the whole pipeline TFLite pays more than its time per
patch alone (``benchmarks/bench_runtime.py``): the default's int8 C-DNNs, 1.5x faster than
their ONNX copies per patch at export, ran at 0.0136 of real time against 0.0093 on ONNX
Runtime; the width-1.0 joint models, about 2x faster per patch in int8 (17-19 against 33-41
ms), ran at 0.050 against 0.123. So only a clear lead keeps a model on TFLite."""

__all__ = [
    "BACKENDS",
    "BackendError",
    "PatchModel",
    "choose_backend",
    "onnx_cpu_threads",
    "open_model",
]


def choose_backend(bundle: Bundle, kinds: Sequence[str] | None = None) -> str:
    """``tflite`` or ``onnx``: the faster backend for ``kinds`` that this machine can run.

    ONNX Runtime on a GPU (TensorRT or CUDA) when the bundle has ONNX models. On a CPU, the
    per-patch times the export measured and stored in the manifest (one thread, the bundle's
    TFLite mode against its float32 ONNX copy) decide, when ONNX Runtime is installed; a bundle
    without those figures runs on TFLite.
    """
    import importlib.util

    from edge_asc.backends.onnx import gpu_available

    members = bundle.select(kinds)
    if not all(m.has_onnx for m in members.values()):
        return "tflite"
    if gpu_available():
        return "onnx"
    if importlib.util.find_spec("onnxruntime") is None:
        return "tflite"
    tflite, onnx = (
        _per_patch(bundle, members, bundle.quantization),
        _per_patch(bundle, members, "onnx"),
    )
    if tflite is None or onnx is None:
        return "tflite"
    return "onnx" if onnx <= CLEAR_MARGIN * tflite else "tflite"


def onnx_cpu_threads(bundle: Bundle, kinds: Sequence[str] | None, cores: int) -> int:
    """Intra-op threads for ONNX Runtime on a CPU, the models run one after another.

    All ``cores`` when the export measured the ONNX models clearly faster on two threads than
    on one (at most :data:`THREAD_GAIN` of the time: large models, e.g. width 1.0, whose
    convolutions split well); otherwise one. Small models lose more to the threads'
    hand-offs than they gain, and the spectrograms need the other core.
    """
    members = bundle.select(kinds)
    one = _per_patch(bundle, members, "onnx")
    two = _per_patch(bundle, members, "onnx", "latency_ms_2_threads")
    if cores < 2 or one is None or two is None:
        return 1
    return cores if two <= THREAD_GAIN * one else 1


THREAD_GAIN = 0.65
"""See :func:`onnx_cpu_threads`: the default (width 0.25) measured 0.7-0.8, width 1.0 0.5."""


def _per_patch(
    bundle: Bundle, members: dict, mode: str, key: str = "latency_ms_1_thread"
) -> float | None:
    """Sum over ``members`` of the per-patch time the export stored for ``mode``, or None."""
    evaluation = bundle.manifest.get("evaluation") or {}
    times = [(evaluation.get(f"{kind}/{mode}") or {}).get(key) for kind in members]
    ok = all(isinstance(t, int | float) and t > 0 for t in times)
    return float(sum(times)) if ok else None  # type: ignore[arg-type]


def open_model(
    member: BundleModel, backend: str = "auto", threads: int | None = None
) -> PatchModel:
    """The runnable model of one bundle member, on the backend asked for.

    Parameters
    ----------
    member : BundleModel
        A spectrogram's model from a loaded bundle.
    backend : str
        One of :data:`BACKENDS`. Here ``auto`` takes the bundle's ONNX model on a GPU
        (TensorRT or CUDA through ONNX Runtime) when both exist, and the TFLite model
        otherwise; the engine resolves ``auto`` for a whole bundle with
        :func:`choose_backend`, which also weighs the two on a CPU.
    threads : int, optional
        CPU threads for the interpreter.

    Returns
    -------
    PatchModel
        A :class:`~edge_asc.backends.tflite.TFLiteModel` or an
        :class:`~edge_asc.backends.onnx.OnnxModel`.

    Raises
    ------
    BackendError
        For an unknown backend, an ONNX request on a bundle without ONNX models, or a model
        the runtime cannot load.
    """
    from edge_asc.backends.onnx import OnnxModel, gpu_available
    from edge_asc.backends.tflite import TFLiteModel

    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "onnx" if member.has_onnx and gpu_available() else "tflite"
    if backend == "tflite":
        return TFLiteModel(member.model_bytes, threads=threads)
    if not member.has_onnx:
        raise BackendError(
            f"the bundle has no ONNX model for {member.kind!r} (export it again with --onnx)"
        )
    return OnnxModel(member.onnx_bytes, threads=threads)
