"""Labelling audio files: every file streamed block by block through the runtime's engine.

Memory does not grow with a file's length: samples are read in blocks, spectrogram frames
are kept only until their patch is done, and only the per-patch posteriors are kept.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_asc.audio import AudioError, iter_audio_blocks
from edge_asc.bundle import Bundle
from edge_asc.decision import OpenSetDecision, stored_decision
from edge_asc.engine import PatchResult, StreamingClassifier
from edge_asc.events import DEFAULT_MAX_NOT_HEARD_S, Event
from edge_asc.tracker import Scene, SceneTracker, clip_scores

AUDIO_SUFFIXES = frozenset(
    {
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".aiff",
        ".aif",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".mp3",
        ".opus",
        ".rf64",
    }
)
"""File types looked for inside folders (any file named explicitly is tried)."""


@dataclass
class FileResult:
    """The scene label of one file, with its scores."""

    path: str
    label: str
    decision: str
    level_dbfs: float
    scores: dict[str, float]
    per_spectrogram: dict[str, dict[str, float]]
    patches: int
    duration_s: float
    timeline: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    evidence: float = float("nan")

    def to_dict(self, timeline: bool = False, events: bool = False) -> dict[str, Any]:
        """JSON-ready form (one line per file in ``--format json``)."""
        data: dict[str, Any] = {
            "path": self.path,
            "decision": self.decision,
            "label": self.label,
            "score": self.scores[self.label],
            "evidence": round(self.evidence, 6) if math.isfinite(self.evidence) else None,
            "scores": self.scores,
            "per_spectrogram": self.per_spectrogram,
            "patches": self.patches,
            "duration_s": round(self.duration_s, 3),
            "level_dbfs": round(self.level_dbfs, 1) if math.isfinite(self.level_dbfs) else None,
        }
        if timeline:
            data["timeline"] = self.timeline
        if events:
            data["events"] = self.events
        return data


def expand_inputs(items: Iterable[str]) -> Iterator[tuple[str, Path | None]]:
    """Files named by paths, folders (searched recursively) and glob patterns.

    Yields ``(argument, path)``; ``path`` is None when an argument matched nothing, so the
    caller can report it and go on.
    """
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
            if not found:
                yield item, None
            for p in found:
                yield item, p
        elif path.exists():
            yield item, path
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                yield item, None
            for p in matches:
                yield item, p
        else:
            yield item, None


def _labelled(scores: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    return {label: round(float(s), 6) for label, s in zip(labels, scores, strict=True)}


def classify_file(
    path: Path,
    bundle: Bundle,
    kinds: Sequence[str] | None = None,
    fusion: str | None = None,
    threads: int | None = None,
    window_s: float = 3.0,
    block_frames: int = 65536,
    backend: str = "auto",
    engine: StreamingClassifier | None = None,
    decision: OpenSetDecision | None = None,
    max_not_heard_s: float = DEFAULT_MAX_NOT_HEARD_S,
) -> FileResult:
    """Label one file: mean patch posterior per spectrogram (eq. 18), fused across them.

    Parameters
    ----------
    path : Path
        Audio file in any format libsndfile reads, any rate and channel count.
    bundle : Bundle
        Loaded model bundle.
    kinds : sequence of str, optional
        Spectrograms to use (all of the bundle's by default).
    fusion : str, optional
        ``mean``, ``prod`` or ``max``; the bundle's default when omitted.
    threads : int, optional
        Interpreter threads.
    window_s : float
        Seconds of patches the timeline's label averages (as ``listen --window``).
    block_frames : int
        Frames read from the file per step.
    backend : str
        ``auto``, ``tflite`` or ``onnx`` (see :func:`edge_asc.backends.open_model`).
    engine : StreamingClassifier, optional
        An engine for ``bundle`` and ``kinds`` to reuse (it is reset first): loading models
        once matters for many files, above all on a GPU. ``threads`` and ``backend`` are
        then the engine's.
    decision : OpenSetDecision, optional
        Level gate and thresholds of the timeline's decisions and of the events (default:
        the bundle's stored thresholds, as the command line uses them).
    max_not_heard_s : float
        Seconds without its label after which an event ends.

    Raises
    ------
    AudioError
        If the file cannot be read, or is too short for one patch.
    """
    if engine is None:
        engine = StreamingClassifier(bundle, kinds, threads=threads, backend=backend)
    else:
        engine.reset()
    fusion = fusion or bundle.default_fusion
    tracker = SceneTracker(
        bundle.labels,
        engine.kinds,
        window_s,
        fusion,
        decision=decision or stored_decision(bundle),
        max_not_heard_s=max_not_heard_s,
    )
    results: list[PatchResult] = []
    timeline: list[dict[str, Any]] = []
    events: list[Event] = []
    sum_squares = 0.0
    for block in iter_audio_blocks(path, engine.sample_rate, block_frames):
        sum_squares += float(np.dot(block, block))
        patches = engine.push(block)
        results.extend(patches)
        for scene in tracker.add(patches):
            if timeline and timeline[-1]["end_s"] == round(scene.end_s, 3):
                timeline.pop()  # the other spectrograms' patches of the same span: keep the last
            timeline.append(_timeline_row(scene, window_s))
            events += [c.event for c in scene.events if c.kind == "end"]
    events += [c.event for c in tracker.finish()]
    duration = engine.samples_in / engine.sample_rate
    fused, per_kind = clip_scores(results, engine.kinds, len(bundle.labels), fusion)
    if fused is None:
        raise AudioError(
            f"'{path}' is too short: {duration:.2f} s of audio, the models need at least "
            f"{engine.first_patch_seconds:.2f} s for one patch"
        )
    labels = bundle.labels
    label = labels[int(np.argmax(fused))]
    mean_square = sum_squares / max(engine.samples_in, 1)
    level = 10 * math.log10(mean_square) if mean_square > 0 else -math.inf
    evidence = tracker.decision.evidence_for(label, fused)
    return FileResult(
        path=str(path),
        label=label,
        decision=tracker.decision.decide(label, evidence, level),
        evidence=evidence,
        level_dbfs=level,
        scores=_labelled(fused, labels),
        per_spectrogram={k: _labelled(v, labels) for k, v in per_kind.items()},
        patches=len(results),
        duration_s=duration,
        timeline=timeline,
        events=[_event_row(e) for e in sorted(events, key=lambda e: e.start_s)],
    )


def _event_row(event: Event) -> dict[str, Any]:
    """One event of ``--events``: label, start, end, peak and mean score."""
    row = event.to_dict("end")
    del row["event"]
    return row


def _timeline_row(scene: Scene, window_s: float) -> dict[str, Any]:
    """One row of ``--timeline``: the tracker's steady label after a patch."""
    return {
        "start_s": round(max(0.0, scene.end_s - window_s), 3),
        "end_s": round(scene.end_s, 3),
        "decision": scene.decision,
        "label": scene.label,
        "score": round(scene.score, 6),
        "evidence": round(scene.evidence, 6),
        "window_label": scene.window_label,
    }
