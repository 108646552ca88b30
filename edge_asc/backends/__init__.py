"""Running a bundle's models: TFLite on the CPU, ONNX Runtime (TensorRT, CUDA) on a GPU.

:func:`open_model` picks the backend; both give a :class:`PatchModel`, so the engine does not
care which one it drives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_asc.backends.base import BackendError, PatchModel

if TYPE_CHECKING:
    from edge_asc.bundle import BundleModel

BACKENDS: tuple[str, ...] = ("auto", "tflite", "onnx")
"""``--backend`` choices: ``auto`` is ONNX Runtime on a GPU when there is one, else TFLite."""

__all__ = ["BACKENDS", "BackendError", "PatchModel", "open_model"]


def open_model(
    member: BundleModel, backend: str = "auto", threads: int | None = None
) -> PatchModel:
    """The runnable model of one bundle member, on the backend asked for.

    Parameters
    ----------
    member : BundleModel
        A spectrogram's model from a loaded bundle.
    backend : str
        One of :data:`BACKENDS`. ``auto`` takes the bundle's ONNX model on a GPU (TensorRT
        or CUDA through ONNX Runtime) when both exist, and the TFLite model otherwise.
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
        backend = "onnx" if member.onnx_bytes is not None and gpu_available() else "tflite"
    if backend == "tflite":
        return TFLiteModel(member.model_bytes, threads=threads)
    if member.onnx_bytes is None:
        raise BackendError(
            f"the bundle has no ONNX model for {member.kind!r} (export it again with --onnx)"
        )
    return OnnxModel(member.onnx_bytes, threads=threads)
