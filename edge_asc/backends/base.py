"""What the streaming engine needs of a model, whatever runs it.

A :class:`PatchModel` takes normalised float32 patches and gives class probabilities. The
TFLite and ONNX Runtime backends implement it, so the engine never asks which one it drives.
"""

from __future__ import annotations

import time

import numpy as np

from edge_asc.errors import EdgeAscError


class BackendError(EdgeAscError):
    """No interpreter could be imported, or a model could not be loaded; one line."""


class PatchModel:
    """A patch classifier on some runtime.

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
