"""From audio samples to patch posteriors: the one inference path of the runtime.

:class:`StreamingClassifier` takes blocks of mono samples of any size, feeds the streaming
spectrograms (one shared STFT per feature setting), cuts each newly completed 128-frame patch
(:class:`~edge_asc.features.PatchCutter`), normalises it with the bundle's statistics and runs
that spectrogram's model. Files (``classify``), replayed files and the live microphone
(``listen``) all go through it, so they give the same patch posteriors for the same audio,
whatever the block sizes. What happens to the posteriors next (window, fusion, label) is the
:mod:`edge_asc.tracker`'s job.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edge_asc.backends import choose_backend, onnx_cpu_threads, open_model
from edge_asc.backends.onnx import gpu_available
from edge_asc.bundle import Bundle, BundleModel, verify_member
from edge_asc.errors import EdgeAscError
from edge_asc.features import FeatureConfig, FeatureStream, PatchCutter, timing


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
    due_sample : int
        Input samples needed for the patch to be complete (whatever the block sizes): the
        order in which patches become available.
    probs : numpy.ndarray
        ``(C,)`` class probabilities.
    level_dbfs : float
        RMS level of the input samples the patch covers, in dB full scale (``-inf`` for
        digital silence).
    """

    kind: str
    index: int
    start_s: float
    end_s: float
    due_sample: int
    probs: np.ndarray = field(repr=False)
    level_dbfs: float = -math.inf


class _LevelTrack:
    """The input's energy per hop of samples, so each patch knows how loud its audio was.

    Sums are taken over exactly ``hop`` samples at a time, whatever the block sizes, so the
    level of a patch does not depend on how the audio was pushed.
    """

    def __init__(self, hop: int) -> None:
        self.hop = hop
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)
        self._sums = np.zeros(0, dtype=np.float64)
        self._first = 0  # hop index of _sums[0]

    def push(self, block: np.ndarray) -> None:
        data = np.concatenate([self._pending, block.astype(np.float64)])
        whole = data.size // self.hop * self.hop
        if whole:
            chunks = data[:whole].reshape(-1, self.hop)
            self._sums = np.concatenate([self._sums, np.einsum("ij,ij->i", chunks, chunks)])
        self._pending = data[whole:]

    def level(self, first: int, count: int) -> float:
        """dBFS of hops ``first`` to ``first + count`` (those that have arrived)."""
        sums = self._sums[max(0, first - self._first) : max(0, first + count - self._first)]
        if not sums.size:
            return -math.inf
        mean_square = float(sums.sum()) / (sums.size * self.hop)
        return 10 * math.log10(mean_square) if mean_square > 0 else -math.inf

    def forget_before(self, first: int) -> None:
        drop = first - self._first
        if drop > 0:
            self._sums = self._sums[drop:]
            self._first += drop


class _Spectrogram:
    """One spectrogram's model, patch cutter and timing."""

    def __init__(
        self,
        member: BundleModel,
        frames: int,
        hop: int,
        model_kwargs: dict,
        level_hop: int,
        shared: _Spectrogram | None = None,
    ) -> None:
        self.member = member
        features = member.features
        if shared is not None:  # another stream's model: loaded once, used by one at a time
            self.model, self.lock = shared.model, shared.lock
        else:
            self.model, self.lock = open_model(member, **model_kwargs), threading.Lock()
            # The manifest must describe this model (patch geometry, label count), and the
            # copy that runs must still give what it gave at export (TFLite and ONNX alike).
            member.check_model_io(self.model.input_shape, self.model.n_classes)
            copy = "onnx_model" if self.model.backend.startswith("onnxruntime") else "tflite_model"
            verify_member(member, **{copy: self.model})
        self.cutter = PatchCutter(features.n_bins, frames, hop)
        self.seconds_per_frame = features.hop_length / features.sample_rate
        self.hops_per_frame = features.hop_length // level_hop  # level hops per frame
        frame_timing = timing(member.kind, features)
        self._frame_hop, self._lookahead = frame_timing.hop, frame_timing.lookahead

    def due_sample(self, index: int) -> int:
        """Samples that must be in before patch ``index`` is complete."""
        last_frame = self.cutter.first_frame(index) + self.cutter.width - 1
        return last_frame * self._frame_hop + self._lookahead

    def classify(self, patches: list[np.ndarray]) -> np.ndarray:
        """Posteriors ``(n, C)`` of raw patches, in order."""
        normalised = np.stack([self.member.norm.apply(p) for p in patches])
        with self.lock:
            return self.model.predict(normalised)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def model_threads(n_models: int, parallel: bool = True) -> int:
    """Interpreter threads per model so that the cores are used without contention.

    The engine runs different spectrograms' models at once on its own worker threads; each
    interpreter (TFLite or ONNX Runtime) then gets its share of the cores, not all of them
    (oversubscribed thread pools spin against each other on a busy machine).
    """
    cores = available_cores()
    running = min(n_models, cores) if parallel else 1
    return max(1, cores // max(1, running))


class StreamingClassifier:
    """Incremental patch inference for the spectrograms of a model bundle.

    Parameters
    ----------
    bundle : Bundle
        A loaded model bundle.
    kinds : sequence of str, optional
        Spectrograms to use (all of the bundle's by default).
    threads : int, optional
        Interpreter threads per model; by default the cores shared out among the models
        that run at once (:func:`model_threads`).
    patch_hop : int, optional
        Frames between patch starts; the patch width (non-overlapping, as in training) by
        default. A smaller hop gives more frequent updates for the same models.
    parallel : bool
        Run different spectrograms' models on different cores when their patches complete
        together (same results, less wall time). Ignored for ONNX Runtime on a CPU, which
        runs one model at a time (:func:`edge_asc.backends.onnx_cpu_threads`).
    backend : str
        ``auto`` (the faster the bundle and the machine allow:
        :func:`edge_asc.backends.choose_backend`), ``tflite`` or ``onnx``.
    share_models : StreamingClassifier, optional
        Another engine for the same bundle and spectrograms whose loaded models this one
        uses too (several sources in one process, one model load).

    Attributes
    ----------
    samples_in : int
        Samples pushed since the last :meth:`reset`.
    feature_seconds, inference_seconds : float
        Wall time spent on spectrograms and in the models since the last reset.
    """

    def __init__(
        self,
        bundle: Bundle,
        kinds: Sequence[str] | None = None,
        threads: int | None = None,
        patch_hop: int | None = None,
        parallel: bool = True,
        backend: str = "auto",
        share_models: StreamingClassifier | None = None,
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
        self.sample_rate: int = rates.pop()
        self.kinds: tuple[str, ...] = tuple(members)
        if backend == "auto":
            backend = choose_backend(bundle, self.kinds)
        if backend == "onnx" and not gpu_available():
            # ONNX Runtime on a CPU: one model at a time, on one thread for small models
            # (the default's: 4.1 ms per patch against 4.9 on two, and worker threads held
            # 10-20 MB more) or on every core where the export measured that it pays.
            parallel = False
            if threads is None:
                threads = onnx_cpu_threads(bundle, self.kinds, available_cores())
        if threads is None:
            threads = model_threads(len(members), parallel)
        model_kwargs = {"backend": backend, "threads": threads}
        if share_models is not None and share_models.kinds != tuple(members):
            raise EngineError("engines can share models only for the same spectrograms")
        level_hop = math.gcd(*(m.features.hop_length for m in members.values()))
        self._spectrograms = {
            kind: _Spectrogram(
                member,
                frames,
                hop,
                model_kwargs,
                level_hop,
                share_models._spectrograms[kind] if share_models is not None else None,
            )
            for kind, member in members.items()
        }
        self.backend: str = next(iter(self._spectrograms.values())).model.backend
        self._groups: dict[FeatureConfig, list[str]] = {}
        for kind, member in members.items():
            self._groups.setdefault(member.features, []).append(kind)
        self._levels = _LevelTrack(level_hop)
        self.reset()
        workers = min(len(self._spectrograms), available_cores())
        self._pool = ThreadPoolExecutor(workers) if parallel and workers > 1 else None

    def reset(self) -> None:
        """Forget all audio, to start a new recording with the same (already loaded) models."""
        self._streams = [FeatureStream(ks, config) for config, ks in self._groups.items()]
        for spectrogram in self._spectrograms.values():
            spectrogram.cutter.reset()
        self._levels.reset()
        self.samples_in = 0
        # Samples not yet given to the spectrograms. They are held until the next patch of
        # some spectrogram is due, then computed in one push: the same patches at the same
        # moment as pushing every block at once (streaming equals batch), for a fraction of
        # the per-push cost of many small blocks (see features.spectrograms.PIECE_SAMPLES).
        self._held: list[np.ndarray] = []
        self._next_due = min(s.due_sample(0) for s in self._spectrograms.values())
        self.feature_seconds = 0.0
        self.inference_seconds = 0.0

    @property
    def patch_seconds(self) -> float:
        """Duration one patch covers."""
        first = next(iter(self._spectrograms.values()))
        return first.cutter.width * first.seconds_per_frame

    @property
    def patches_done(self) -> dict[str, int]:
        """Patches completed so far, per spectrogram."""
        return {kind: s.cutter.patches_done for kind, s in self._spectrograms.items()}

    @property
    def frames_held(self) -> dict[str, int]:
        """Spectrogram frames waiting for their patch, per spectrogram (stays bounded)."""
        return {kind: s.cutter.frames_held for kind, s in self._spectrograms.items()}

    @property
    def first_patch_seconds(self) -> float:
        """Audio needed before the first patch of every spectrogram is complete."""
        due = max(s.due_sample(0) for s in self._spectrograms.values())
        return due / self.sample_rate

    def push(self, samples: np.ndarray) -> list[PatchResult]:
        """Feed mono samples at :attr:`sample_rate`; return the patches they completed.

        The patches come in the order they became due (see :attr:`PatchResult.due_sample`),
        spectrograms in the engine's order for equal due samples.
        """
        block = np.array(samples, dtype=np.float32).reshape(-1)  # a copy: the caller may reuse it
        self.samples_in += block.size
        self._held.append(block)
        if self.samples_in < self._next_due:
            return []  # no patch can be complete yet: compute the spectrograms later, at once
        started = time.perf_counter()
        held = np.concatenate(self._held) if len(self._held) > 1 else self._held[0]
        self._held = []
        self._levels.push(held)
        ready: dict[str, list[tuple[int, np.ndarray]]] = {}
        for stream in self._streams:
            for kind, new_frames in stream.push(held).items():
                patches = self._spectrograms[kind].cutter.push(new_frames)
                if patches:
                    ready[kind] = patches
        self._next_due = min(
            s.due_sample(s.cutter.patches_done) for s in self._spectrograms.values()
        )
        self.feature_seconds += time.perf_counter() - started
        if not ready:
            return []
        started = time.perf_counter()
        jobs = [
            (self._spectrograms[kind], [p for _, p in patches]) for kind, patches in ready.items()
        ]
        if self._pool is not None and len(jobs) > 1:
            # Different spectrograms' models run on different cores at once (the
            # interpreter releases the GIL); one interpreter is never used by two threads.
            outputs = list(self._pool.map(lambda job: job[0].classify(job[1]), jobs))
        else:
            outputs = [spectrogram.classify(patches) for spectrogram, patches in jobs]
        self.inference_seconds += time.perf_counter() - started
        results = []
        for (kind, patches), probs in zip(ready.items(), outputs, strict=True):
            spectrogram = self._spectrograms[kind]
            for (index, _), p in zip(patches, probs, strict=True):
                first = spectrogram.cutter.first_frame(index)
                results.append(
                    PatchResult(
                        kind=kind,
                        index=index,
                        start_s=first * spectrogram.seconds_per_frame,
                        end_s=(first + spectrogram.cutter.width) * spectrogram.seconds_per_frame,
                        due_sample=spectrogram.due_sample(index),
                        probs=p,
                        level_dbfs=self._levels.level(
                            first * spectrogram.hops_per_frame,
                            spectrogram.cutter.width * spectrogram.hops_per_frame,
                        ),
                    )
                )
        self._levels.forget_before(
            min(
                s.cutter.first_frame(s.cutter.patches_done) * s.hops_per_frame
                for s in self._spectrograms.values()
            )
        )
        order = {kind: i for i, kind in enumerate(self.kinds)}
        results.sort(key=lambda r: (r.due_sample, order[r.kind]))
        return results

    def close(self) -> None:
        """Stop the worker threads (also done when the classifier is garbage collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
