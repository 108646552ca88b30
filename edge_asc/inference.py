"""Running a bundle's models on patches: TFLite on whichever interpreter this machine has.

(:func:`open_model` picks between TFLite and the ONNX backend of
:mod:`edge_asc.onnx_backend`, which runs on a GPU.)

The maintained ai-edge-litert comes first, then the older tflite-runtime, then TensorFlow's
own interpreter (present on a training machine). Quantized models are fed and read through
their stored scale and zero point, so callers always pass normalised float32 patches and get
float probabilities back, whatever the quantization.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_asc.errors import EdgeAscError

if TYPE_CHECKING:
    from edge_asc.bundle import BundleModel


BACKENDS: tuple[str, ...] = ("auto", "tflite", "onnx")
"""``--backend`` choices: ``auto`` is ONNX Runtime on a GPU when there is one, else TFLite."""


class BackendError(EdgeAscError):
    """No interpreter could be imported, or a model could not be loaded; one line."""


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
        A :class:`TFLiteModel` or an :class:`edge_asc.onnx_backend.OnnxModel`.

    Raises
    ------
    BackendError
        For an unknown backend, an ONNX request on a bundle without ONNX models, or a model
        the runtime cannot load.
    """
    from edge_asc.onnx_backend import OnnxModel, gpu_available

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


def interpreter_class() -> tuple[Any, str]:
    """The first available TFLite interpreter class and the name of its package."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow"
    except ImportError:
        raise BackendError(
            "no TFLite interpreter found: pip install ai-edge-litert (or tflite-runtime)"
        ) from None


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what the interpreter's C++ code prints on stderr while it starts.

    LiteRT announces its XNNPACK delegate on file descriptor 2 ("INFO: Created TensorFlow
    Lite XNNPACK delegate for CPU."), which would break one-line output. Failures still
    surface as Python exceptions.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. under a test runner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class PatchModel:
    """A patch classifier on some runtime: what the streaming engine needs of a model.

    Subclasses set ``input_shape`` (``(bins, frames, 1)``) and ``backend`` (a readable name
    of the runtime) and run one patch in :meth:`_predict_one`.
    """

    input_shape: tuple[int, ...]
    backend: str

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        raise NotImplementedError

    def _predict_one(self, patch: np.ndarray) -> np.ndarray:
        """Class scores ``(C,)`` of one ``(1, bins, frames, 1)`` float32 patch."""
        raise NotImplementedError

    def predict(self, patches: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, C)`` of ``(n, bins, frames)`` normalised patches."""
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 3 or tuple(patches.shape[1:]) != self.input_shape[:2]:
            raise ValueError(
                f"expected patches of shape (n, {self.input_shape[0]}, {self.input_shape[1]}), "
                f"got {patches.shape}"
            )
        out = np.empty((len(patches), self.n_classes), dtype=np.float64)
        for i, patch in enumerate(patches):
            out[i] = self._predict_one(patch[None, ..., None])
        return out

    def latency(self, repeats: int = 50) -> float:
        """Median seconds for one single-patch inference (after a warm-up)."""
        patch = np.zeros((1, *self.input_shape[:2]), dtype=np.float32)
        self.predict(patch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.predict(patch)
            times.append(time.perf_counter() - start)
        return float(np.median(times))


class TFLiteModel(PatchModel):
    """One TFLite patch classifier.

    Parameters
    ----------
    model_bytes : bytes
        The ``.tflite`` flatbuffer.
    threads : int, optional
        Interpreter threads (default: the interpreter's choice).
    """

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        cls, self.backend = interpreter_class()
        try:
            with _native_stderr_silenced():
                self._interpreter = cls(model_content=bytes(model_bytes), num_threads=threads)
                self._interpreter.allocate_tensors()
                self._interpreter.invoke()  # the delegate is set up on the first call
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load the TFLite model: {exc}") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape = tuple(int(n) for n in self._input["shape"][1:])

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return int(self._output["shape"][-1])

    def op_names(self) -> set[str]:
        """Names of the operators in the graph (to check for Flex / custom ops)."""
        return {op["op_name"] for op in self._interpreter._get_ops_details()}

    def _quantize(self, patch: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return patch.astype(np.float32)
        scale, zero = self._input["quantization"]
        info = np.iinfo(dtype)
        q = np.round(patch / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        if self._output["dtype"] == np.float32:
            return values.astype(np.float64)
        scale, zero = self._output["quantization"]
        return (values.astype(np.float64) - zero) * scale

    def _predict_one(self, patch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input["index"], self._quantize(patch))
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output["index"])[0])

    def predict(self, patches: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, C)`` of ``(n, bins, frames)`` normalised patches."""
        out = super().predict(patches)
        # int8 outputs are coarse: renormalise so each row is a distribution again.
        out = np.clip(out, 0.0, None)
        sums = out.sum(axis=1, keepdims=True)
        return np.divide(out, sums, out=np.full_like(out, 1.0 / out.shape[1]), where=sums > 0)
