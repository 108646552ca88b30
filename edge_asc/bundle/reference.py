"""The reference check: every copy of a model must compute the same function.

A bundle may carry one network twice, as TFLite (for the CPU) and as ONNX (for a GPU). Export
runs both on one seeded patch and stores their outputs in the manifest; the manifest check
refuses copies whose stored outputs disagree, and :func:`verify_member`, called by the
runtime once it has opened a model, runs the copy it will use on the same patch and refuses
it when its output differs from what export measured. A model swapped for another, or an
ONNX conversion that went wrong, is then refused instead of labelling scenes differently on
the GPU than on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edge_asc.bundle.common import BundleError, bad, is_int, is_number, short

if TYPE_CHECKING:
    from edge_asc.bundle.model import BundleModel

AGREEMENT_TOLERANCE: dict[str, float] = {
    "float32": 0.01,
    "float16": 0.05,
    "dynamic": 0.2,
    "int8": 0.2,
}
"""Largest difference of any class probability between the TFLite copy (in the bundle's
quantization) and the float32 ONNX copy of one model, on the reference patch. int8 against
float32 differs by up to ~0.09 on the shipped models; a different network differs by ~0.9."""


@dataclass(frozen=True)
class Reference:
    """A check that every copy of a model computes the same function.

    Attributes
    ----------
    seed : int
        Seed of the input patch (see :func:`reference_patch`).
    outputs : dict of str to tuple of float
        Class probabilities each copy (``tflite``, ``onnx``) gave on that patch at export.
    """

    seed: int
    outputs: dict[str, tuple[float, ...]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"seed": self.seed, "outputs": {k: list(v) for k, v in self.outputs.items()}}

    @classmethod
    def from_dict(cls, data: Any, kind: str, n_classes: int, copies: set[str]) -> Reference:
        """Check and rebuild a reference for a model with ``n_classes`` outputs."""
        if not isinstance(data, dict) or set(data) != {"seed", "outputs"}:
            bad(f"{kind}: 'reference' must be an object with exactly 'seed' and 'outputs'")
        if not is_int(data["seed"]) or not 0 <= data["seed"] < 2**32:
            bad(f"{kind}: reference seed must be an integer in 0..2**32-1")
        outputs = data["outputs"]
        if not isinstance(outputs, dict) or not outputs:
            bad(f"{kind}: reference outputs must be a non-empty object")
        for backend, probs in outputs.items():
            if backend not in copies:
                bad(f"{kind}: reference output for {short(backend)}, which the bundle lacks")
            if not isinstance(probs, list) or len(probs) != n_classes:
                bad(f"{kind}: reference {backend} output must list {n_classes} probabilities")
            if not all(is_number(p) and -1e-6 <= p <= 1 + 1e-6 for p in probs):
                bad(f"{kind}: reference {backend} output must hold probabilities in 0..1")
        return cls(seed=data["seed"], outputs={k: tuple(map(float, v)) for k, v in outputs.items()})


def check_agreement(reference: Reference, quantization: str, kind: str) -> None:
    """The stored TFLite and ONNX outputs must agree within the quantization's tolerance."""
    if len(reference.outputs) == 2:
        gap = float(np.max(np.abs(np.subtract(*reference.outputs.values()))))
        if gap > AGREEMENT_TOLERANCE[quantization]:
            bad(
                f"{kind}: its TFLite and ONNX copies disagree on the reference patch "
                f"(by {gap:.3f}, tolerance {AGREEMENT_TOLERANCE[quantization]})"
            )


REFERENCE_SEED = 20260509
"""Seed export uses for the reference patch."""

REPLAY_TOLERANCE = 0.05
"""Largest difference of any class probability between a copy run now and the same copy at
export (other CPUs, interpreter versions, GPU float16 kernels)."""


class PatchClassifier(Protocol):
    """What the check needs of a runnable model (a :class:`~edge_asc.backends.PatchModel`)."""

    def predict(self, patches: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, C)`` of ``(n, bins, frames)`` patches."""
        ...


def reference_patch(seed: int, bins: int, frames: int) -> np.ndarray:
    """The reference input: a ``(1, bins, frames)`` float32 patch of standard normal values.

    Drawn with NumPy's legacy ``RandomState``, whose stream is frozen across NumPy versions,
    so the same seed gives the same patch on the exporting and on the running machine.
    """
    rng = np.random.RandomState(seed)  # the legacy, frozen stream on purpose
    return rng.standard_normal((1, bins, frames)).astype(np.float32)


def reference_outputs(
    models: Mapping[str, PatchClassifier], bins: int, frames: int, seed: int = REFERENCE_SEED
) -> Reference:
    """Run every copy of one model (``{"tflite": ..., "onnx": ...}``) on the reference patch.

    Export stores the result as the spectrogram's ``reference``.
    """
    patch = reference_patch(seed, bins, frames)
    outputs = {
        name: tuple(round(float(p), 6) for p in np.asarray(model.predict(patch))[0])
        for name, model in models.items()
    }
    return Reference(seed=seed, outputs=outputs)


def verify_member(
    member: BundleModel,
    tflite_model: PatchClassifier | None = None,
    onnx_model: PatchClassifier | None = None,
) -> None:
    """Check opened copies of a bundle model against the outputs stored at export.

    Each given copy is run on the reference patch; its output must match what the same
    copy gave at export (within :data:`REPLAY_TOLERANCE`) and what the other copy gave
    (within the bundle quantization's :data:`AGREEMENT_TOLERANCE`).
    When both copies are given they are also compared with each other. A member without a
    stored reference (bundles exported before the check existed, the shipped default) passes.

    Parameters
    ----------
    member : BundleModel
        The member the copies were opened from.
    tflite_model, onnx_model : optional
        Its opened TFLite and ONNX models (anything with ``predict``).

    Raises
    ------
    BundleError
        One line naming the bundle, the spectrogram and the gap.
    """
    reference = member.reference
    if reference is None:
        return
    agreement = AGREEMENT_TOLERANCE[member.quantization]
    patch = reference_patch(reference.seed, member.features.n_bins, member.frames)
    actual = {
        name: np.asarray(model.predict(patch), dtype=np.float64)[0]
        for name, model in (("tflite", tflite_model), ("onnx", onnx_model))
        if model is not None
    }
    where = f"bundle '{member.path}'" if member.path is not None else "bundle"
    for name, probs in actual.items():
        if probs.shape != (len(member.labels),):
            raise BundleError(
                f"{where}: the {member.kind} {name} model gives {probs.size} outputs, the "
                f"bundle has {len(member.labels)} labels"
            )
        for stored_name, stored in reference.outputs.items():
            tolerance = REPLAY_TOLERANCE if stored_name == name else agreement
            gap = float(np.max(np.abs(probs - np.asarray(stored))))
            if gap > tolerance:
                raise BundleError(
                    f"{where} is refused: its {member.kind} {name} model disagrees with the "
                    f"{stored_name} output stored at export by {gap:.3f} on the reference "
                    f"patch (tolerance {tolerance})"
                )
    if len(actual) == 2:
        gap = float(np.max(np.abs(actual["tflite"] - actual["onnx"])))
        if gap > agreement:
            raise BundleError(
                f"{where} is refused: its {member.kind} TFLite and ONNX models disagree by "
                f"{gap:.3f} on the reference patch (tolerance {agreement})"
            )
