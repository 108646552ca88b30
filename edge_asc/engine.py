"""From audio samples to scene labels: the one inference path of the runtime.

:class:`StreamingClassifier` takes blocks of mono samples of any size, feeds the streaming
spectrograms (one shared STFT per feature setting), cuts each newly completed 128-frame
patch, normalises it with the bundle's statistics and runs that spectrogram's TFLite model.
Files (``classify``), replayed files and the live microphone (``listen``) all go through
it, so they give the same patch posteriors for the same audio, whatever the block sizes.

:class:`SceneWindow` averages the patch posteriors of the last few seconds per spectrogram
(eq. 18) and fuses the spectrograms (eqs. 20, 23, 24); :class:`LabelSmoother` turns the
window scores into a steady label with hysteresis.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edge_asc.bundle import Bundle, BundleModel
from edge_asc.errors import EdgeAscError
from edge_asc.features import FeatureConfig, FeatureStream
from edge_asc.fusion import FUSION_RULES, fuse
from edge_asc.inference import open_model


class EngineError(EdgeAscError):
    """A bundle or setting the runtime cannot use; one line."""


@dataclass(frozen=True)
class PatchResult:
    """One patch's posterior.

    Attributes
    ----------
    kind : str
        Spectrogram it came from.
    index : int
        Patch number in that spectrogram's stream (0, 1, ...).
    start_s, end_s : float
        Time span of the patch's frames (centre of the first frame to one hop past the
        centre of the last), in seconds from the stream's start.
    ready_sample : int
        Input samples that had arrived when the patch completed.
    probs : numpy.ndarray
        ``(C,)`` class probabilities.
    """

    kind: str
    index: int
    start_s: float
    end_s: float
    ready_sample: int
    probs: np.ndarray = field(repr=False)


class _KindState:
    """Frames of one spectrogram waiting to become patches."""

    def __init__(
        self, member: BundleModel, frames: int, hop: int, threads: int | None, backend: str
    ):
        self.member = member
        self.model = open_model(member, backend, threads=threads)
        if self.model.input_shape[:2] != (member.features.n_bins, frames):
            raise EngineError(
                f"{member.kind} model takes {self.model.input_shape[:2]} patches, the bundle "
                f"says {(member.features.n_bins, frames)}"
            )
        self.frames = frames
        self.hop = hop
        self.buffer = np.zeros((member.features.n_bins, 0), dtype=np.float32)
        self.buffer_start = 0  # frame index of buffer[:, 0]
        self.next_patch = 0


class StreamingClassifier:
    """Incremental patch inference for the spectrograms of a model bundle.

    Parameters
    ----------
    bundle : Bundle
        A loaded model bundle.
    kinds : sequence of str, optional
        Spectrograms to use (all of the bundle's by default).
    threads : int, optional
        Interpreter threads per model.
    backend : str
        ``auto`` (ONNX Runtime on a GPU when there is one and the bundle has ONNX models,
        else TFLite), ``tflite`` or ``onnx``; see :func:`edge_asc.inference.open_model`.
    patch_hop : int, optional
        Frames between patch starts; the patch width (non-overlapping, as in training) by
        default. A smaller hop gives more frequent updates for the same models.
    parallel : bool
        Run different spectrograms' models on different cores when their patches complete
        together (same results, less wall time).
    """

    def __init__(
        self,
        bundle: Bundle,
        kinds: Sequence[str] | None = None,
        threads: int | None = None,
        patch_hop: int | None = None,
        parallel: bool = True,
        backend: str = "auto",
    ) -> None:
        members = bundle.select(kinds)
        self.labels = bundle.labels
        frames = int(bundle.manifest["patch"]["frames"])
        hop = frames if patch_hop is None else int(patch_hop)
        if not 1 <= hop <= frames:
            raise EngineError(f"patch hop must be between 1 and {frames} frames, got {hop}")
        rates = {m.features.sample_rate for m in members.values()}
        if len(rates) != 1:
            raise EngineError(f"the chosen spectrograms use different sample rates: {rates}")
        self.sample_rate = rates.pop()
        self.kinds = tuple(members)
        self._states = {k: _KindState(m, frames, hop, threads, backend) for k, m in members.items()}
        self.backend = next(iter(self._states.values())).model.backend
        self._groups: dict[FeatureConfig, list[str]] = {}
        for kind, member in members.items():
            self._groups.setdefault(member.features, []).append(kind)
        self.reset()
        workers = min(len(self._states), os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(workers) if parallel and workers > 1 else None

    def reset(self) -> None:
        """Forget all audio, to start a new recording with the same (already loaded) models."""
        self._streams = [FeatureStream(ks, config) for config, ks in self._groups.items()]
        for state in self._states.values():
            state.buffer = state.buffer[:, :0]
            state.buffer_start = 0
            state.next_patch = 0
        self.samples_in = 0
        self.feature_seconds = 0.0  # wall time spent on spectrograms (for `edge-asc bench`)
        self.inference_seconds = 0.0  # wall time spent in the models

    @property
    def patch_seconds(self) -> float:
        """Duration one patch covers."""
        state = next(iter(self._states.values()))
        features = state.member.features
        return state.frames * features.hop_length / features.sample_rate

    def push(self, samples: np.ndarray) -> list[PatchResult]:
        """Feed mono samples at :attr:`sample_rate`; return the patches they completed."""
        block = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_in += block.size
        jobs: list[tuple[str, int, np.ndarray]] = []
        for stream in self._streams:
            started = time.perf_counter()
            frames = stream.push(block)
            self.feature_seconds += time.perf_counter() - started
            for kind, new_frames in frames.items():
                jobs.extend(self._ready_patches(kind, new_frames))
        if not jobs:
            return []
        started = time.perf_counter()
        by_kind: dict[str, list[np.ndarray]] = {}
        for kind, _, patch in jobs:
            by_kind.setdefault(kind, []).append(patch)
        if self._pool is not None and len(by_kind) > 1:
            # Different spectrograms' models run on different cores at once (the
            # interpreter releases the GIL); one interpreter is never used by two threads.
            outputs = dict(
                zip(by_kind, self._pool.map(self._classify, by_kind.items()), strict=True)
            )
        else:
            outputs = {item[0]: self._classify(item) for item in by_kind.items()}
        self.inference_seconds += time.perf_counter() - started
        taken = dict.fromkeys(by_kind, 0)
        results = []
        for kind, index, _ in jobs:
            p = outputs[kind][taken[kind]]
            taken[kind] += 1
            state = self._states[kind]
            features = state.member.features
            seconds_per_frame = features.hop_length / features.sample_rate
            first = index * state.hop
            results.append(
                PatchResult(
                    kind=kind,
                    index=index,
                    start_s=first * seconds_per_frame,
                    end_s=(first + state.frames) * seconds_per_frame,
                    ready_sample=self.samples_in,
                    probs=p,
                )
            )
        return results

    def _classify(self, item: tuple[str, list[np.ndarray]]) -> np.ndarray:
        """Posteriors ``(n, C)`` of one spectrogram's raw patches, in order."""
        kind, patches = item
        state = self._states[kind]
        return state.model.predict(np.stack([state.member.norm.apply(p) for p in patches]))

    def _ready_patches(
        self, kind: str, new_frames: np.ndarray
    ) -> list[tuple[str, int, np.ndarray]]:
        """Patches of ``kind`` completed by ``new_frames``: (kind, index, raw patch)."""
        state = self._states[kind]
        if new_frames.shape[1]:
            state.buffer = np.concatenate([state.buffer, new_frames], axis=1)
        out = []
        while True:
            start = state.next_patch * state.hop - state.buffer_start
            if start + state.frames > state.buffer.shape[1]:
                break
            out.append((kind, state.next_patch, state.buffer[:, start : start + state.frames]))
            state.next_patch += 1
        # Keep only the frames a future patch can still use: memory stays flat.
        keep_from = state.next_patch * state.hop - state.buffer_start
        if keep_from > 0:
            state.buffer = state.buffer[:, keep_from:]
            state.buffer_start += keep_from
        return out

    def close(self) -> None:
        """Stop the worker threads (also done when the classifier is garbage collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def clip_scores(
    results: Sequence[PatchResult], kinds: Sequence[str], n_classes: int, fusion: str
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Per-spectrogram mean patch posterior (eq. 18) and their fusion.

    Returns ``(None, {})`` when no patch is there yet; a spectrogram without patches is
    left out of the fusion.
    """
    if fusion not in FUSION_RULES:
        raise EngineError(f"unknown fusion rule {fusion!r}; choose from {', '.join(FUSION_RULES)}")
    per_kind: dict[str, np.ndarray] = {}
    for kind in kinds:
        probs = [r.probs for r in results if r.kind == kind]
        if probs:
            per_kind[kind] = np.mean(probs, axis=0)
    if not per_kind:
        return None, {}
    fused = fuse([p[None] for p in per_kind.values()], fusion)[0]
    assert fused.shape == (n_classes,)
    return fused, per_kind


class SceneWindow:
    """The patch posteriors of the last ``window_s`` seconds, fused across spectrograms."""

    def __init__(
        self, kinds: Sequence[str], n_classes: int, window_s: float = 3.0, fusion: str = "prod"
    ) -> None:
        if window_s <= 0:
            raise EngineError("the window must be longer than 0 s")
        if fusion not in FUSION_RULES:
            raise EngineError(
                f"unknown fusion rule {fusion!r}; choose from {', '.join(FUSION_RULES)}"
            )
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


class LabelSmoother:
    """A steady label: exponential smoothing of scores plus hysteresis.

    The label changes only when another class leads the current one by ``margin`` for
    ``hold`` consecutive updates, so two close scenes do not make it flicker.
    """

    def __init__(self, alpha: float = 0.5, margin: float = 0.1, hold: int = 2) -> None:
        if not 0 < alpha <= 1:
            raise EngineError("smoothing alpha must be in (0, 1]")
        self.alpha, self.margin, self.hold = alpha, margin, max(1, hold)
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
