"""Training data and thresholds for the ``unknown`` answer.

The runtime says ``unknown`` when the fused scores favour the background class (a class named
``unknown``, trained on non-target recordings) or when the best target class scores below its
threshold (:mod:`edge_asc.decision`). This module makes the pieces of that:

* :func:`write_manifest`: one ``csv`` dataset of the target clips (their folds kept) and the
  non-target clips as class ``unknown``, each non-target *source* in a single fold, so that a
  leave-one-fold-out run never trains on the source of a non-target clip it tests;
* :func:`fit_threshold`: the score threshold that best separates, on held-out clips only,
  in-domain clips labelled correctly from non-target clips labelled ``unknown``;
* :func:`rates`: both shares at a threshold (the rows of the benchmark's ROC-style table).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_asc.decision import UNKNOWN, OpenSetDecision
from edge_asc.files import atomic_output

THRESHOLD_GRID = np.unique(
    np.round(np.concatenate([np.arange(0.0, 1.0001, 0.01), np.arange(0.99, 0.9995, 0.001)]), 3)
)
"""Thresholds tried by :func:`fit_threshold` (finer near 1, where ``vs_unknown`` evidence of
a product fusion sits)."""


@dataclass(frozen=True)
class NonTarget:
    """A manifest of non-target recordings and which of its rows to use.

    Attributes
    ----------
    manifest : Path
        CSV with ``filename`` (relative to its folder) and ``source_id`` columns.
    group_by : str
        Column whose value names one recording source (all its clips share a fold).
    keep : frozenset of str
        Labels (``label`` column) to use; empty: every row.
    """

    manifest: Path
    group_by: str = "source_id"
    keep: frozenset[str] = frozenset()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def assign_folds(sizes: dict[str, int], folds: Sequence[int]) -> dict[str, int]:
    """Sources to folds, largest first into the fold holding the fewest clips so far."""
    load = dict.fromkeys(folds, 0)
    out: dict[str, int] = {}
    for source in sorted(sizes, key=lambda s: (-sizes[s], s)):
        fold = min(load, key=lambda f: (load[f], f))
        out[source] = fold
        load[fold] += sizes[source]
    return out


def write_manifest(
    target: Path, non_target: Iterable[NonTarget], out: Path, folds: Sequence[int] = (1, 2, 3, 4)
) -> dict[int, int]:
    """Write the target clips plus non-target clips as ``unknown`` into one ``csv`` manifest.

    Parameters
    ----------
    target : Path
        Manifest of the target classes (``filename,label,fold``), e.g. ESC-10's.
    non_target : iterable of NonTarget
        Non-target recordings; each manifest's sources are spread over ``folds`` by clip count.
    out : Path
        The combined manifest (absolute file names), written atomically.
    folds : sequence of int
        The target's folds.

    Returns
    -------
    dict of int to int
        Non-target clips per fold.
    """
    rows = [
        {
            "filename": str((target.parent / r["filename"]).resolve()),
            "label": r["label"],
            "fold": r["fold"],
            "source_id": r.get("source_id", ""),
        }
        for r in _rows(target)
    ]
    per_fold: dict[int, int] = dict.fromkeys(folds, 0)
    for spec in non_target:
        table = [r for r in _rows(spec.manifest) if not spec.keep or r["label"] in spec.keep]
        sizes: dict[str, int] = defaultdict(int)
        for r in table:
            sizes[r[spec.group_by]] += 1
        fold_of = assign_folds(sizes, folds)
        for r in table:
            fold = fold_of[r[spec.group_by]]
            per_fold[fold] += 1
            rows.append(
                {
                    "filename": str((spec.manifest.parent / r["filename"]).resolve()),
                    "label": UNKNOWN,
                    "fold": str(fold),
                    "source_id": r[spec.group_by],
                }
            )
    with atomic_output(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["filename", "label", "fold", "source_id"])
        writer.writeheader()
        writer.writerows(rows)
    return per_fold


@dataclass(frozen=True)
class Rates:
    """Both sides of the open-set trade-off at one threshold."""

    threshold: float
    in_domain_correct: float
    non_target_unknown: float

    @property
    def balanced(self) -> float:
        """Mean of the two shares."""
        return (self.in_domain_correct + self.non_target_unknown) / 2


def decisions(
    fused: np.ndarray, labels: Sequence[str], threshold: float, evidence: str = "top"
) -> list[str]:
    """The runtime's rule on fused clip scores: top label, or ``unknown`` (background or weak).

    The runtime's own :class:`~edge_asc.decision.OpenSetDecision`, at a level above its gate.
    """
    rule = OpenSetDecision(tuple(labels), threshold=threshold, evidence=evidence)
    said = []
    for row in fused:
        label = labels[int(np.argmax(row))]
        said.append(rule.decide(label, rule.evidence_for(label, row), 0.0))
    return said


def rates(
    fused: np.ndarray,
    truth: Sequence[str],
    labels: Sequence[str],
    threshold: float,
    evidence: str = "top",
) -> Rates:
    """In-domain clips labelled correctly, and non-target clips labelled ``unknown``.

    Parameters
    ----------
    fused : numpy.ndarray
        ``(n, C)`` fused clip scores over ``labels``.
    truth : sequence of str
        True label per clip; ``unknown`` marks a non-target clip.
    labels : sequence of str
        The model's classes (may include ``unknown``).
    threshold : float
        Evidence the top target label needs.
    evidence : str
        What the threshold applies to (:data:`edge_asc.decision.EVIDENCE`).
    """
    said = decisions(fused, labels, threshold, evidence)
    inside = [s == t for s, t in zip(said, truth, strict=True) if t != UNKNOWN]
    outside = [s == UNKNOWN for s, t in zip(said, truth, strict=True) if t == UNKNOWN]
    return Rates(
        threshold,
        float(np.mean(inside)) if inside else float("nan"),
        float(np.mean(outside)) if outside else float("nan"),
    )


def fit_threshold(
    fused: np.ndarray, truth: Sequence[str], labels: Sequence[str], evidence: str = "top"
) -> Rates:
    """The threshold with the best balanced share on these (held-out) clips; lowest on ties."""
    best: Rates | None = None
    for t in THRESHOLD_GRID:
        r = rates(fused, truth, labels, float(t), evidence)
        if best is None or r.balanced > best.balanced + 1e-12:
            best = r
    assert best is not None
    return best
