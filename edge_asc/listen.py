"""The listen loop: blocks from a source, through the engine and the tracker, to the outputs.

It reads like the TFLite audio examples' loop: take a block, push it, and when patches
completed, build an :class:`Update` and hand it to every output ("sink"). The source
(:mod:`edge_asc.sources`) already delivers mono audio at the model's rate; the engine
(:mod:`edge_asc.engine`) turns it into patch posteriors; the tracker (:mod:`edge_asc.tracker`)
into a steady label. The loop schedules by the samples that arrive, never by wall-clock
sleeps, so a replayed file gives the labels ``classify --timeline`` gives.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_asc.bundle import Bundle
from edge_asc.decision import OpenSetDecision
from edge_asc.engine import PatchResult, StreamingClassifier
from edge_asc.events import DEFAULT_MAX_NOT_HEARD_S, EventChange
from edge_asc.sinks import Sink
from edge_asc.sources import ModelRateSource
from edge_asc.tracker import LabelSmoother, Scene, SceneTracker


@dataclass
class Update:
    """The scene after a step that completed at least one patch.

    Attributes
    ----------
    t : float
        Unix time of the update.
    audio_s : float
        Seconds of audio taken from the source so far.
    label : str
        The steady (smoothed, hysteresis) label.
    score : float
        The window's fused score of ``label``.
    scores : dict of str to float
        The window's fused scores, in label order.
    window_label : str
        The window's own best class (unsmoothed).
    compute_ms : float
        Resampling, spectrograms and inference since the previous update, in milliseconds.
    dropped_blocks : int
        Blocks dropped so far because the queue was full.
    overflows : int
        Blocks the driver reported as incomplete so far.
    level_dbfs : float
        RMS level of the newest patch's audio, in dB full scale.
    decision : str
        What the sensor says: ``label``, ``unknown`` or ``quiet``.
    source : str
        Name of the source the audio came from.
    patches : list of PatchResult
        The patches completed in this step.
    scenes : list of Scene
        The tracker's state after each of those patches (the last one is this update's).
    """

    t: float
    audio_s: float
    label: str
    score: float
    scores: dict[str, float]
    window_label: str
    compute_ms: float
    dropped_blocks: int
    overflows: int
    level_dbfs: float
    decision: str
    source: str
    patches: list[PatchResult] = field(repr=False)
    scenes: list[Scene] = field(default_factory=list, repr=False)

    @property
    def events(self) -> list[EventChange]:
        """Events that started or ended in this step, in order."""
        return [change for scene in self.scenes for change in scene.events]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: one line of ``edge-asc listen --jsonl``."""
        return {
            "t": round(self.t, 3),
            "audio_s": round(self.audio_s, 3),
            "source": self.source,
            "decision": self.decision,
            "label": self.label,
            "score": round(self.score, 6),
            "evidence": round(self.scenes[-1].evidence, 6) if self.scenes else None,
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "window_label": self.window_label,
            "compute_ms": round(self.compute_ms, 3),
            "dropped_blocks": self.dropped_blocks,
            "overflows": self.overflows,
            "level_dbfs": round(self.level_dbfs, 1) if math.isfinite(self.level_dbfs) else None,
            "patches": len(self.patches),
        }


class Listener:
    """The consumer: blocks in, scene updates out.

    Parameters
    ----------
    bundle : Bundle
        A loaded model bundle.
    kinds : sequence of str, optional
        Spectrograms to use (all of the bundle's by default).
    window_s : float
        Seconds of patches the scene window averages.
    fusion : str, optional
        ``mean``, ``prod`` or ``max``; the bundle's default when omitted.
    threads : int, optional
        Interpreter threads.
    smoother : LabelSmoother, optional
        The label's smoothing and hysteresis (the tracker's defaults when omitted).
    backend : str
        ``auto``, ``tflite`` or ``onnx`` (see :func:`edge_asc.backends.open_model`).
    decision : OpenSetDecision, optional
        Level gate and score thresholds (the defaults when omitted).
    max_not_heard_s : float
        Seconds without its label after which an event ends.
    share_models : Listener, optional
        Another listener (of another source) whose loaded models this one uses too.

    Attributes
    ----------
    audio_s : float
        Seconds of audio taken so far.
    updates : int
        Updates produced so far.
    last : Update or None
        The latest update.
    """

    def __init__(
        self,
        bundle: Bundle,
        kinds: Sequence[str] | None = None,
        window_s: float = 3.0,
        fusion: str | None = None,
        threads: int | None = None,
        smoother: LabelSmoother | None = None,
        backend: str = "auto",
        decision: OpenSetDecision | None = None,
        max_not_heard_s: float = DEFAULT_MAX_NOT_HEARD_S,
        share_models: Listener | None = None,
    ) -> None:
        self.engine = StreamingClassifier(
            bundle,
            kinds,
            threads=threads,
            backend=backend,
            share_models=share_models.engine if share_models is not None else None,
        )
        self.tracker = SceneTracker(
            bundle.labels,
            self.engine.kinds,
            window_s,
            fusion or bundle.default_fusion,
            smoother,
            decision,
            max_not_heard_s,
        )
        self.audio_s = 0.0
        self.updates = 0
        self.last: Update | None = None
        self.paused: threading.Event | None = None  # set: audio is discarded, not classified
        # Called with (source name, mono block at the model's rate, audio_s at its end) for
        # every block heard: how the event clips and the dashboard's spectrogram get audio.
        self.audio_tap: Callable[[str, Any, float], None] | None = None

    @property
    def sample_rate(self) -> int:
        """The model's sample rate."""
        return self.engine.sample_rate

    def source(self, source: Any, duration_s: float | None = None) -> ModelRateSource:
        """``source`` as this listener needs it: mono at the model's rate, cut to a duration."""
        return ModelRateSource(source, self.sample_rate, duration_s)

    def updates_from(self, source: ModelRateSource) -> Iterator[Update]:
        """Consume ``source`` (already started) and yield an :class:`Update` per new patch."""
        compute = 0.0
        was_paused = False
        for block in source.blocks():
            self.audio_s = source.audio_s
            if self.paused is not None and self.paused.is_set():
                was_paused = True
                continue
            if self.audio_tap is not None:  # never while paused: that audio is not kept
                self.audio_tap(source.name, block, self.audio_s)
            if was_paused:  # the audio has a gap: start the spectrograms and label afresh
                self.engine.reset()
                self.tracker.reset()
                was_paused = False
            started = time.perf_counter()
            patches = self.engine.push(block)
            compute += time.perf_counter() - started
            self.audio_s = source.audio_s
            if patches:
                compute += source.resample_seconds
                source.resample_seconds = 0.0
                yield self._update(patches, source, compute)
                compute = 0.0

    def run(self, source: ModelRateSource, sinks: Sequence[Sink]) -> None:
        """Hand every update from ``source`` to every sink, until the source ends.

        Events still open when the source ends (or listening is interrupted) are ended and
        handed over too.
        """
        try:
            for update in self.updates_from(source):
                for sink in sinks:
                    sink.update(update)
        finally:
            ended = self.tracker.finish()
            for sink in sinks:
                sink.events(ended, source.name)

    def _update(
        self, patches: list[PatchResult], source: ModelRateSource, compute: float
    ) -> Update:
        scenes = self.tracker.add(patches)
        scene = scenes[-1]
        self.updates += 1
        self.last = Update(
            t=time.time(),
            audio_s=self.audio_s,
            label=scene.label,
            score=scene.score,
            scores=scene.scores,
            window_label=scene.window_label,
            compute_ms=compute * 1000,
            dropped_blocks=source.dropped_blocks,
            overflows=source.overflows,
            level_dbfs=scene.level_dbfs,
            decision=scene.decision,
            source=source.name,
            patches=patches,
            scenes=scenes,
        )
        return self.last


def summary(listener: Listener, source: ModelRateSource) -> str:
    """One line for stderr when listening ends."""
    last = listener.last
    label = f"last label {last.label!r}" if last else "no patch completed"
    overflows = f", {source.overflows} overflows" if source.overflows else ""
    return (
        f"edge-asc: heard {listener.audio_s:.1f} s of audio from {source.name}, "
        f"{listener.updates} updates, {label}, {source.dropped_blocks} dropped blocks"
        f"{overflows}"
    )
