"""Late fusion of several spectrograms' posteriors (the paper's eqs. 20, 23 and 24).

Shared by training's evaluation and the on-device runtime, so a fused label measured at
training time is computed the same way on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FUSION_RULES: tuple[str, ...] = ("mean", "prod", "max")
"""Late-fusion rules: eq. 20 (mean), eq. 23 (product), eq. 24 (max)."""

PROD_FLOOR = 1e-12
"""Probabilities are clipped to at least this before the log in Prod fusion."""


def fuse(posteriors: Sequence[np.ndarray], rule: str, *, floor: float = PROD_FLOOR) -> np.ndarray:
    """Late fusion of clip posteriors from several spectrograms (eqs. 20, 23, 24).

    Parameters
    ----------
    posteriors : sequence of numpy.ndarray
        One ``(n_clips, C)`` posterior per spectrogram, rows aligned on the same clips.
    rule : {"mean", "prod", "max"}
        ``mean``: average over spectrograms (eq. 20); ``prod``: product (eq. 23); ``max``:
        class-wise maximum (eq. 24).
    floor : float, optional
        For ``prod`` only: probabilities are clipped to at least ``floor`` before taking logs,
        so one exact zero acts as a strong (not absolute) veto.

    Returns
    -------
    numpy.ndarray
        ``(n_clips, C)`` float64 fused posterior, every row renormalised to sum to 1 (the
        argmax, eq. 21, is unchanged by this; a row of all zeros becomes uniform).

    Raises
    ------
    ValueError
        For an unknown rule, no inputs, inputs that are not 2-D or have different shapes.

    Notes
    -----
    ``prod`` is computed as a sum of logs in float64 and normalised with the log-sum-exp
    shift, so a product of many small probabilities (e.g. five float32 softmax outputs) does
    not underflow to 0/0. The paper's ``1/S`` factor in eq. 23 cancels in the normalisation.
    """
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; valid rules: {', '.join(FUSION_RULES)}")
    if len(posteriors) == 0:
        raise ValueError("nothing to fuse: no posteriors given")
    arrays = [np.asarray(p, dtype=np.float64) for p in posteriors]
    shape = arrays[0].shape
    if len(shape) != 2:
        raise ValueError(f"posteriors must be (n_clips, C), got shape {shape}")
    for i, a in enumerate(arrays[1:], start=1):
        if a.shape != shape:
            raise ValueError(
                f"posterior {i} has shape {a.shape}, posterior 0 has {shape}; "
                "all must be (n_clips, C) for the same clips and classes"
            )
    stack = np.stack(arrays)
    if rule == "prod":
        if not floor > 0:
            raise ValueError(f"floor must be positive, got {floor}")
        logs = np.log(np.maximum(stack, floor)).sum(axis=0)
        logs -= logs.max(axis=1, keepdims=True)
        fused = np.exp(logs)
    elif rule == "mean":
        fused = stack.mean(axis=0)
    else:
        fused = stack.max(axis=0)
    return _normalise_rows(fused)


def _normalise_rows(values: np.ndarray) -> np.ndarray:
    """Rows divided by their sums; an all-zero row becomes uniform."""
    sums = values.sum(axis=1, keepdims=True)
    n_classes = values.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sums > 0, values / np.where(sums > 0, sums, 1.0), 1.0 / n_classes)
    return out
