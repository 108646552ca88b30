"""Running a TFLite model on patches, on whichever interpreter this machine has.

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
from typing import Any

import numpy as np


class BackendError(Exception):
    """No TFLite interpreter could be imported, or a model could not be loaded; one line."""


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


class TFLiteModel:
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
            self._interpreter.set_tensor(
                self._input["index"], self._quantize(patch[None, ..., None])
            )
            self._interpreter.invoke()
            out[i] = self._dequantize(self._interpreter.get_tensor(self._output["index"])[0])
        # int8 outputs are coarse: renormalise so each row is a distribution again.
        out = np.clip(out, 0.0, None)
        sums = out.sum(axis=1, keepdims=True)
        return np.divide(out, sums, out=np.full_like(out, 1.0 / out.shape[1]), where=sums > 0)

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
