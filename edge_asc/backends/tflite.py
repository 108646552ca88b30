"""TFLite models on whichever interpreter this machine has.

The maintained ai-edge-litert comes first, then the older tflite-runtime, then TensorFlow's
own interpreter (present on a training machine). Quantized models are fed and read through
their stored scale and zero point, so callers always pass normalised float32 patches and get
float probabilities back, whatever the quantization.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_asc.backends.base import BackendError, PatchModel
from edge_asc.native_stderr import native_stderr_silenced


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
            with native_stderr_silenced():
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
