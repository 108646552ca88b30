"""From patch posteriors to a scene label: window average, late fusion, smoothing.

One :class:`SceneTracker` is what ``listen``, ``classify --timeline`` and ``bench`` all use,
so the three cannot drift apart. It takes the engine's patches one at a time, in the order
they became due, which makes its labels independent of how the audio was blocked: the same
file gives the same label sequence whether it came from a microphone callback of 1024
samples or a 64k-sample file read.

The window average is the paper's clip rule (eq. 18) over the last few seconds, the fusion
its late fusion across spectrograms (eqs. 20, 23, 24), and :class:`LabelSmoother` adds
exponential smoothing with hysteresis so that two close scenes do not make the label flicker.
Then the open-set decision (:mod:`edge_asc.decision`: the label, ``unknown`` or ``quiet``)
and the events (:mod:`edge_asc.events`) follow from the steady label, its score and the level
of the newest patch's audio. A patch under the level gate is ``quiet`` and ends the window
and the smoothing: what a model makes of silence must not decide the label of what follows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_asc.decision import OpenSetDecision
from edge_asc.engine import EngineError, PatchResult
from edge_asc.events import DEFAULT_MAX_NOT_HEARD_S, EventChange, EventTracker
from edge_asc.fusion import FUSION_RULES, fuse


def _check_fusion(fusion: str) -> None:
    if fusion not in FUSION_RULES:
        raise EngineError(f"unknown fusion rule {fusion!r}; choose from {', '.join(FUSION_RULES)}")


def clip_scores(
    results: Sequence[PatchResult], kinds: Sequence[str], n_classes: int, fusion: str
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Per-spectrogram mean patch posterior (eq. 18) and their fusion.

    Returns ``(None, {})`` when no patch is there yet; a spectrogram without patches is
    left out of the fusion.
    """
    _check_fusion(fusion)
    per_kind: dict[str, np.ndarray] = {}
    for kind in kinds:
        probs = [r.probs for r in results if r.kind == kind]
        if probs:
            per_kind[kind] = np.mean(probs, axis=0)
    if not per_kind:
        return None, {}
    fused = fuse([p[None] for p in per_kind.values()], fusion)[0]
    if fused.shape != (n_classes,):
        raise EngineError(f"the models give {fused.shape[0]} classes, the bundle has {n_classes}")
    return fused, per_kind


class SceneWindow:
    """The patch posteriors of the last ``window_s`` seconds, fused across spectrograms."""

    def __init__(
        self, kinds: Sequence[str], n_classes: int, window_s: float = 3.0, fusion: str = "prod"
    ) -> None:
        if not (np.isfinite(window_s) and window_s > 0):
            raise EngineError(
                f"the window must be a finite number of seconds above 0, got {window_s}"
            )
        _check_fusion(fusion)
        self.kinds, self.n_classes, self.window_s, self.fusion = kinds, n_classes, window_s, fusion
        self._recent: deque[PatchResult] = deque()

    def add(self, results: Sequence[PatchResult]) -> None:
        """Add new patches and forget those that ended more than a window before the newest."""
        self._recent.extend(results)
        if not self._recent:
            return
        newest = max(r.end_s for r in self._recent)
        while self._recent and self._recent[0].end_s < newest - self.window_s - 1e-9:
            self._recent.popleft()

    def scores(self) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """Fused scores of the window and the per-spectrogram means."""
        return clip_scores(list(self._recent), self.kinds, self.n_classes, self.fusion)

    def clear(self) -> None:
        """Forget every patch."""
        self._recent.clear()


class LabelSmoother:
    """A steady label: exponential smoothing of scores plus hysteresis.

    The label changes only when another class leads the current one by ``margin`` for
    ``hold`` consecutive updates, so two close scenes do not make it flicker.
    """

    def __init__(self, alpha: float = 0.5, margin: float = 0.1, hold: int = 2) -> None:
        if not 0 < alpha <= 1:
            raise EngineError("smoothing alpha must be in (0, 1]")
        self.alpha, self.margin, self.hold = alpha, margin, max(1, hold)
        self.reset()

    def reset(self) -> None:
        """Forget the history."""
        self.smoothed: np.ndarray | None = None
        self.label: int | None = None
        self._challenger: int | None = None
        self._streak = 0

    def update(self, scores: np.ndarray) -> int:
        """Fold in new window scores; return the current label index."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.smoothed is None:
            self.smoothed = scores.copy()
        else:
            self.smoothed = self.alpha * scores + (1 - self.alpha) * self.smoothed
        best = int(np.argmax(self.smoothed))
        if self.label is None:
            self.label = best
        elif best != self.label and (
            self.smoothed[best] - self.smoothed[self.label] >= self.margin
        ):
            self._streak = self._streak + 1 if best == self._challenger else 1
            self._challenger = best
            if self._streak >= self.hold:
                self.label, self._challenger, self._streak = best, None, 0
        else:
            self._challenger, self._streak = None, 0
        return self.label


@dataclass(frozen=True)
class Scene:
    """The tracker's state after one patch.

    Attributes
    ----------
    end_s : float
        End of the patch that was added last, in seconds of audio.
    label : str
        The steady (smoothed, hysteresis) label.
    score : float
        The window's fused score of ``label``.
    window_label : str
        The window's own best class (unsmoothed).
    scores : dict of str to float
        The window's fused scores, in label order.
    per_spectrogram : dict of str to numpy.ndarray
        The window's mean posterior of each spectrogram.
    level_dbfs : float
        RMS level of the newest patch's audio.
    decision : str
        ``label``, ``unknown`` or ``quiet`` (see :class:`~edge_asc.decision.OpenSetDecision`).
    evidence : float
        What ``label``'s threshold was compared with
        (:meth:`~edge_asc.decision.OpenSetDecision.evidence_for`).
    events : list of EventChange
        Events that started or ended with this patch.
    """

    end_s: float
    label: str
    score: float
    window_label: str
    scores: dict[str, float]
    per_spectrogram: dict[str, np.ndarray] = field(repr=False)
    level_dbfs: float = -np.inf
    decision: str = ""
    evidence: float = float("nan")
    events: list[EventChange] = field(default_factory=list)


class SceneTracker:
    """Window average, fusion and smoothing of a stream of patches, one patch at a time.

    Parameters
    ----------
    labels : sequence of str
        Class names in model output order.
    kinds : sequence of str
        The spectrograms whose patches come in.
    window_s : float
        Seconds of patches the window averages.
    fusion : str
        ``mean``, ``prod`` or ``max``.
    smoother : LabelSmoother, optional
        Smoothing and hysteresis (defaults when omitted).
    decision : OpenSetDecision, optional
        Level gate and score thresholds (defaults when omitted).
    max_not_heard_s : float
        Seconds without its label after which an event ends.
    """

    def __init__(
        self,
        labels: Sequence[str],
        kinds: Sequence[str],
        window_s: float = 3.0,
        fusion: str = "prod",
        smoother: LabelSmoother | None = None,
        decision: OpenSetDecision | None = None,
        max_not_heard_s: float = DEFAULT_MAX_NOT_HEARD_S,
    ) -> None:
        self.labels = tuple(labels)
        self.window = SceneWindow(kinds, len(self.labels), window_s, fusion)
        self.smoother = smoother or LabelSmoother()
        self.decision = decision or OpenSetDecision(self.labels)
        self.max_not_heard_s = max_not_heard_s
        self.reset()

    def reset(self) -> None:
        """Forget every patch, the label's history and open events (a new recording)."""
        self.window.clear()
        self.smoother.reset()
        self.events = EventTracker(self.max_not_heard_s)
        self.last: Scene | None = None

    def finish(self) -> list[EventChange]:
        """End the events still open (the stream is over)."""
        return self.events.finish()

    def add(self, patches: Sequence[PatchResult]) -> list[Scene]:
        """Add patches in the order given (the engine's); return the scene after each."""
        scenes = []
        for patch in patches:
            if self.decision.is_quiet(patch.level_dbfs):
                # What a model makes of silence is no evidence for the sound that follows:
                # the label starts afresh after the gate. The scores shown are this patch's.
                self.window.clear()
                self.smoother.reset()
                fused, per_kind = clip_scores(
                    [patch], self.window.kinds, len(self.labels), self.window.fusion
                )
                assert fused is not None
                label = int(np.argmax(fused))
            else:
                self.window.add([patch])
                fused, per_kind = self.window.scores()
                assert fused is not None  # the window holds at least this patch
                label = self.smoother.update(fused)
            score = float(fused[label])
            evidence = self.decision.evidence_for(self.labels[label], fused)
            decision = self.decision.decide(self.labels[label], evidence, patch.level_dbfs)
            self.last = Scene(
                end_s=patch.end_s,
                label=self.labels[label],
                score=score,
                window_label=self.labels[int(np.argmax(fused))],
                scores={name: float(s) for name, s in zip(self.labels, fused, strict=True)},
                per_spectrogram=per_kind,
                level_dbfs=patch.level_dbfs,
                decision=decision,
                evidence=evidence,
                events=self.events.update(patch.end_s, decision, score),
            )
            scenes.append(self.last)
        return scenes
