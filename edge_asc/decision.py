"""What the sensor says: a scene label, ``unknown`` or ``quiet``, never a forced guess.

Always-on tools that people deploy gate on loudness first, then on per-label score thresholds
(Frigate's audio events, BirdNET-Pi). The same here: below ``quiet_dbfs`` (and for digital
silence, always) the answer is ``quiet``; otherwise the steady label is reported only when its
evidence reaches that label's threshold, else ``unknown``. A model may also have a class named
``unknown`` of its own, trained on non-target recordings (a background class): when it is the
steady label, the answer is ``unknown`` whatever its score.

The evidence (:data:`EVIDENCE`) is the label's fused window score (``top``), or, for a model
with a background class, the label's score against the background's alone (``vs_unknown``:
``s / (s + s_unknown)``). The background class is a detector of what the model was not
trained on; its score says so even when it is not the highest. On the default model's
held-out clips, at the same share of non-target clips said ``unknown`` (92 %), in-domain
clips labelled correctly rose from 70 % (``top``) to 82 % (``vs_unknown``, product fusion).

Thresholds: the bundle's fitted ones (``open_set`` in its manifest), else
:data:`DEFAULT_THRESHOLD`; a configuration file or ``--threshold`` overrides them, a single
number for every label or ``label=score`` for single labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_asc.errors import EdgeAscError

if TYPE_CHECKING:
    from edge_asc.bundle import Bundle

QUIET = "quiet"
"""The decision for input below the level gate."""

UNKNOWN = "unknown"
"""The decision when no class has enough evidence."""

DEFAULT_QUIET_DBFS = -50.0
"""Level gate: RMS below this many dB full scale is ``quiet``."""

DEFAULT_THRESHOLD = 0.5
"""Fused window score a label needs when the bundle stores no fitted threshold (bundles made
before thresholds were stored, or exported without ``--open-set``)."""

EVIDENCE = ("top", "vs_unknown")
"""What a threshold is compared with: ``top``, the label's fused score; ``vs_unknown``, its
share against the background class ``s / (s + s_unknown)`` (the label's fused score where the
model has no class ``unknown``)."""


class DecisionError(EdgeAscError):
    """A threshold setting that cannot be used; one line."""


@dataclass(frozen=True)
class OpenSetDecision:
    """The level gate and the per-label score thresholds.

    Parameters
    ----------
    labels : tuple of str
        The model's classes.
    quiet_dbfs : float
        Level below which the answer is ``quiet``.
    threshold : float
        Score a label needs unless ``per_label`` says otherwise.
    per_label : mapping of str to float
        Thresholds of single labels.
    evidence : str
        One of :data:`EVIDENCE`: what the thresholds apply to.
    """

    labels: tuple[str, ...]
    quiet_dbfs: float = DEFAULT_QUIET_DBFS
    threshold: float = DEFAULT_THRESHOLD
    per_label: Mapping[str, float] = field(default_factory=dict)
    evidence: str = "top"

    def __post_init__(self) -> None:
        if self.evidence not in EVIDENCE:
            raise DecisionError(
                f"unknown evidence {self.evidence!r}; choose from {', '.join(EVIDENCE)}"
            )
        if not math.isfinite(self.quiet_dbfs) or self.quiet_dbfs > 0:
            raise DecisionError(
                f"the quiet level must be a finite dBFS value <= 0, got {self.quiet_dbfs}"
            )
        for name, value in {"default": self.threshold, **self.per_label}.items():
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise DecisionError(f"threshold of {name!r} must be between 0 and 1, got {value!r}")
        unknown = sorted(set(self.per_label) - set(self.labels))
        if unknown:
            raise DecisionError(
                f"threshold for unknown label(s) {', '.join(unknown)}; "
                f"the model's labels are {', '.join(self.labels)}"
            )

    def threshold_of(self, label: str) -> float:
        """The score ``label`` needs to be reported."""
        return float(self.per_label.get(label, self.threshold))

    def evidence_for(self, label: str, scores: Sequence[float]) -> float:
        """What ``label``'s threshold is compared with, from the fused scores of all labels.

        Parameters
        ----------
        label : str
            One of :attr:`labels`.
        scores : sequence of float
            Fused scores in :attr:`labels` order.
        """
        score = float(scores[self.labels.index(label)])
        if self.evidence == "top" or UNKNOWN not in self.labels or label == UNKNOWN:
            return score
        total = score + float(scores[self.labels.index(UNKNOWN)])
        return score / total if total > 0 else 0.0

    def is_quiet(self, level_dbfs: float) -> bool:
        """Whether audio at this level is under the gate (digital silence and NaN are)."""
        return not level_dbfs > self.quiet_dbfs

    def decide(self, label: str, score: float, level_dbfs: float) -> str:
        """``label``, ``unknown`` or ``quiet`` for a steady label, its evidence
        (:meth:`evidence_for`) and the level."""
        if self.is_quiet(level_dbfs):
            return QUIET
        if label == UNKNOWN:  # the model's own background class
            return UNKNOWN
        return label if score >= self.threshold_of(label) else UNKNOWN


def stored_decision(bundle: Bundle) -> OpenSetDecision:
    """The decision a bundle's fitted thresholds give (:data:`DEFAULT_THRESHOLD` without them).

    What a library caller gets when it passes no decision: the same answers as the command
    line without options.
    """
    fitted = bundle.spec.open_set if bundle.spec is not None else None
    if fitted is None:
        return OpenSetDecision(tuple(bundle.labels))
    return OpenSetDecision(
        tuple(bundle.labels),
        threshold=fitted.threshold,
        per_label=dict(fitted.per_label),
        evidence=fitted.evidence,
    )


def parse_thresholds(text: str | None) -> dict[str, float]:
    """``dog=0.7,rain=0.4`` as a dict (``--threshold`` on the command line)."""
    out: dict[str, float] = {}
    if not text:
        return out
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise DecisionError(f"thresholds look like 'dog=0.7,rain=0.4', got {item!r}") from None
    return out
