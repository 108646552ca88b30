"""Running a bundle's ONNX models with ONNX Runtime: TensorRT or CUDA on a GPU, else the CPU.

On a Jetson the GPU is reached through TensorRT (TFLite's GPU delegate has no OpenCL there).
ONNX Runtime's TensorRT execution provider compiles each model to an FP16 engine the first
time it runs, which takes minutes on a Jetson, so engines are cached on disk under
``$EDGE_ASC_CACHE/tensorrt`` (default ``~/.cache/edge-asc/tensorrt``) and reused while the
model and the TensorRT version stay the same. Layers TensorRT cannot take fall back to CUDA,
then to the CPU, inside the same session.

:class:`OnnxModel` is a :class:`edge_asc.backends.base.PatchModel` like the TFLite model, so the
streaming engine does not care which one it drives.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_asc.backends.base import BackendError, PatchModel

GPU_PROVIDERS: tuple[str, ...] = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
"""ONNX Runtime providers that mean "a GPU", in order of preference."""


def cache_dir() -> Path:
    """Where TensorRT engines are kept between starts (``$EDGE_ASC_CACHE/tensorrt``)."""
    root = os.environ.get("EDGE_ASC_CACHE") or Path.home() / ".cache" / "edge-asc"
    return Path(root) / "tensorrt"


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers on this machine (empty without onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def gpu_available() -> bool:
    """Whether ONNX Runtime here can run on a GPU (a GPU device, and a TensorRT/CUDA provider).

    The device nodes are looked at first, so a machine without a GPU never imports
    onnxruntime (tens of MB) just to learn that it cannot use it.
    """
    # onnxruntime-gpu lists its GPU providers even on a machine without a GPU.
    if not any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvhost-gpu", "/dev/nvgpu")):
        return False
    providers = available_providers()
    return any(p in providers for p in GPU_PROVIDERS)


def _providers() -> list[Any]:
    """TensorRT (FP16, engine cache) > CUDA > CPU, limited to what this build offers."""
    available = available_providers()
    chosen: list[Any] = []
    if gpu_available():
        if "TensorrtExecutionProvider" in available:
            engines = cache_dir()
            engines.mkdir(parents=True, exist_ok=True)
            options = {
                "trt_fp16_enable": True,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(engines),
            }
            chosen.append(("TensorrtExecutionProvider", options))
        if "CUDAExecutionProvider" in available:
            chosen.append("CUDAExecutionProvider")
    chosen.append("CPUExecutionProvider")
    return chosen


class OnnxModel(PatchModel):
    """One ONNX patch classifier on ONNX Runtime.

    Parameters
    ----------
    model_bytes : bytes
        The ``.onnx`` model (input ``(1, bins, frames, 1)`` float32, output probabilities).
    threads : int, optional
        Intra-op threads on the CPU (default: ONNX Runtime's choice).
    """

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError(
                "the ONNX backend needs onnxruntime (pip install onnxruntime, or "
                "onnxruntime-gpu; on a Jetson see deploy/README.md)"
            ) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: keep the command's output one line
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = _providers()
        if providers == ["CPUExecutionProvider"]:
            # The CPU arena keeps the largest chunks it ever grew; for patch-sized tensors,
            # plain allocations are as fast and hold ~5 MB less per model.
            options.enable_cpu_mem_arena = False
            # Idle pool threads that spin steal the core the spectrograms run on (two
            # threads per model measured 9.3 ms per patch spinning, 4.9 without).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                bytes(model_bytes), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own, unexported exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"cannot load the ONNX model: {first}") from None
        (inp,) = self._session.get_inputs()
        (out,) = self._session.get_outputs()
        self._input_name = inp.name
        self.input_shape = tuple(int(n) for n in inp.shape[1:])
        self._n_classes = int(out.shape[-1])
        provider = self._session.get_providers()[0]
        self.backend = f"onnxruntime ({provider.removesuffix('ExecutionProvider')})"
        self.predict(np.zeros((1, *self.input_shape[:2]), np.float32))  # builds the engine now

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return self._n_classes

    @property
    def on_gpu(self) -> bool:
        """Whether the session's first choice of provider is a GPU one."""
        return self._session.get_providers()[0] in GPU_PROVIDERS

    def _predict_one(self, patch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input_name: patch})[0][0]
