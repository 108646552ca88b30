"""Live scene labels from a microphone, or from a file replayed as if it were one.

Why a queue and a worker: PortAudio calls the stream callback on its own real-time thread,
and a callback that waits (for a lock, for the model, for the terminal) makes the driver drop
audio. So the callback only copies its block into a bounded :class:`BlockQueue` and returns;
when the queue is full the block is dropped and counted, never waited for. The consumer
(:class:`Listener`) takes blocks out, downmixes and resamples them to the model's rate, and
feeds the runtime engine (:class:`~edge_asc.engine.StreamingClassifier`); every completed
patch updates a :class:`~edge_asc.engine.SceneWindow`, and a
:class:`~edge_asc.engine.LabelSmoother` turns the window's scores into a steady label.

Everything is scheduled by the samples that arrive, never by wall-clock sleeps: a file
replayed with :func:`replay_source` goes through exactly the same queue, worker and engine
as the microphone (:func:`microphone_source`), so the same audio gives the same patch
posteriors as ``edge-asc classify``, whatever the block sizes.
"""

from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
import soxr

from edge_asc.audio import audio_info, iter_audio_blocks
from edge_asc.bundle import Bundle
from edge_asc.engine import LabelSmoother, PatchResult, SceneWindow, StreamingClassifier
from edge_asc.errors import EdgeAscError
from edge_asc.inference import _native_stderr_silenced

BLOCK_FRAMES = 1024
"""Frames per block asked of the microphone, and cut from a replayed file."""

QUEUE_SECONDS = 2.0
"""Audio the queue holds before blocks are dropped (the consumer's slack)."""

STALL_SECONDS = 5.0
"""A microphone that delivers nothing for this long is reported as gone."""

_POLL_SECONDS = 0.1
_RESAMPLE_QUALITY = "HQ"  # as edge_asc.audio, so replayed files match `classify`


class ListenError(EdgeAscError):
    """A device or stream problem the user can act on; ``str()`` is one line."""


# ---------------------------------------------------------------------------------------------
# The queue between the audio thread and the worker


class BlockQueue:
    """A bounded FIFO of audio blocks from one producer to one consumer.

    :meth:`offer` never waits: when the queue is full the block is dropped and counted. It
    is what an audio callback calls. :meth:`put` waits for room instead, for a producer that
    may be slowed down (a file replayed as fast as the consumer goes).

    Parameters
    ----------
    max_blocks : int
        Blocks held before :meth:`offer` starts dropping.
    """

    def __init__(self, max_blocks: int = 64) -> None:
        if max_blocks < 1:
            raise ValueError(f"max_blocks must be at least 1, got {max_blocks}")
        self.max_blocks = max_blocks
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max_blocks)
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self.dropped_blocks = 0
        self.dropped_frames = 0

    def offer(self, block: np.ndarray) -> bool:
        """Enqueue a copy of ``block`` without waiting; return False if it was dropped."""
        data = np.array(block, dtype=np.float32, copy=True)
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped_blocks += 1
            self.dropped_frames += len(data)
            return False
        return True

    def put(self, block: np.ndarray, stop: threading.Event | None = None) -> bool:
        """Enqueue a copy of ``block``, waiting for room; False if ``stop`` was set first."""
        data = np.array(block, dtype=np.float32, copy=True)
        while stop is None or not stop.is_set():
            try:
                self._queue.put(data, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def close(self) -> None:
        """Mark the end of the stream (after the producer's last block)."""
        self._closed.set()

    def fail(self, error: BaseException) -> None:
        """End the stream with an error the consumer re-raises once the queue is drained."""
        self._error = error
        self._closed.set()

    def get(self, timeout: float = _POLL_SECONDS) -> np.ndarray | None:
        """The next block; ``None`` at the end of the stream.

        Raises
        ------
        queue.Empty
            If nothing arrived within ``timeout`` seconds and the stream is not over.
        BaseException
            The producer's error (see :meth:`fail`), once every block before it was taken.
        """
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            # close() comes after the last put, so a closed, empty queue stays empty.
            if self._closed.is_set() and self._queue.empty():
                if self._error is not None:
                    raise self._error from None
                return None
            raise

    def __len__(self) -> int:
        return self._queue.qsize()


def _queue_blocks(rate: float, block_frames: int, seconds: float = QUEUE_SECONDS) -> int:
    return max(4, math.ceil(seconds * rate / block_frames))


class BlockSource:
    """Where blocks come from: a started producer filling a :class:`BlockQueue`.

    Use as a context manager (starts and stops the producer) and iterate :meth:`blocks`.

    Attributes
    ----------
    name : str
        What is being listened to, for messages.
    sample_rate : float
        Rate of the blocks, in Hz.
    channels : int
        Channels of the blocks (mono blocks may also be 1-D).
    queue : BlockQueue
        The queue between producer and consumer (its drop counters included).
    overflows : int
        Blocks the driver reported as incomplete (input overflow).
    """

    def __init__(self, name: str, sample_rate: float, channels: int, max_blocks: int) -> None:
        self.name = name
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.queue = BlockQueue(max_blocks)
        self.overflows = 0

    def start(self) -> None:
        """Start producing."""

    def stop(self) -> None:
        """Stop producing and release the device; safe to call twice."""

    def _idle(self) -> None:
        """Called when no block came for a poll interval; raise to end the stream."""

    def blocks(self) -> Iterator[np.ndarray]:
        """The blocks, in order, until the stream ends."""
        while True:
            try:
                block = self.queue.get()
            except queue.Empty:
                self._idle()
                continue
            if block is None:
                return
            yield block

    def __enter__(self) -> BlockSource:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Replaying a file


def _reblock(chunks: Iterable[np.ndarray], frames: int) -> Iterator[np.ndarray]:
    """Cut a stream of chunks into blocks of exactly ``frames`` (the last may be shorter)."""
    pending = np.zeros(0, dtype=np.float32)
    for chunk in chunks:
        pending = np.concatenate([pending, chunk]) if pending.size else chunk
        whole = pending.size // frames * frames
        for start in range(0, whole, frames):
            yield pending[start : start + frames]
        pending = pending[whole:]
    if pending.size:
        yield pending


class ReplaySource(BlockSource):
    """A file played into the queue by a producer thread, in callback-sized blocks.

    As fast as the consumer takes them (waiting for room, nothing dropped), or paced like a
    device: block ``k`` is offered once ``start + samples_sent / (rate * speed)`` has passed
    (scheduling by samples; a slow consumer then loses blocks, as with a microphone).

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile reads; it is read at its own rate and downmixed to mono.
    realtime : bool
        Pace the blocks instead of replaying as fast as possible.
    speed : float
        With ``realtime``, the pace as a multiple of real time.
    block_frames : int
        Frames per block.
    max_blocks : int, optional
        Queue capacity (about :data:`QUEUE_SECONDS` of audio by default).

    Raises
    ------
    AudioError
        At construction, if the file is missing or not audio.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        realtime: bool = False,
        speed: float = 1.0,
        block_frames: int = BLOCK_FRAMES,
        max_blocks: int | None = None,
    ) -> None:
        rate = audio_info(path).sample_rate
        self._chunks = iter_audio_blocks(path, rate)  # validates the file now, not in the thread
        super().__init__(
            f"'{os.fsdecode(path)}'",
            rate,
            1,
            max_blocks or _queue_blocks(rate, block_frames),
        )
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.realtime, self.speed, self.block_frames = realtime, speed, block_frames
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._produce, name="edge-asc-replay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _produce(self) -> None:
        try:
            start = time.monotonic()
            sent = 0
            for block in _reblock(self._chunks, self.block_frames):
                if self._stop.is_set():
                    return
                sent += len(block)
                if self.realtime:
                    # A device hands a block over once its last sample has been recorded.
                    delay = start + sent / (self.sample_rate * self.speed) - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    self.queue.offer(block)
                elif not self.queue.put(block, self._stop):
                    return
            self.queue.close()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self.queue.fail(exc)


def replay_source(
    path: str | os.PathLike[str],
    realtime: bool = False,
    speed: float = 1.0,
    block_frames: int = BLOCK_FRAMES,
    max_blocks: int | None = None,
) -> ReplaySource:
    """A :class:`ReplaySource` for ``path`` (see there); not started yet."""
    return ReplaySource(path, realtime, speed, block_frames, max_blocks)


# ---------------------------------------------------------------------------------------------
# The microphone


def _sounddevice() -> ModuleType:
    """Import sounddevice, or say in one line what is missing."""
    try:
        with _native_stderr_silenced():  # ALSA's probing chatter would break one-line output
            import sounddevice
    except OSError as exc:  # sounddevice is there, the PortAudio library is not
        raise ListenError(
            f"the microphone needs the PortAudio library ({exc}); on Debian or Ubuntu: "
            "apt-get install libportaudio2"
        ) from None
    except ImportError:
        raise ListenError("the microphone needs sounddevice: pip install sounddevice") from None
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio lists it."""

    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float
    is_default: bool


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order.

    Raises
    ------
    ListenError
        If sounddevice or the PortAudio library is missing.
    """
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise ListenError(f"cannot list audio devices: {exc}") from None
    try:
        default_index = int(default)
    except (TypeError, ValueError):  # a name was set as sounddevice's default
        default_index = -1
    if default_index < 0:
        # PortAudio's own default input (sd.default.device says -1 when it is not overridden)
        try:
            default_index = int(sd.query_devices(kind="input")["index"])
        except (sd.PortAudioError, ValueError, KeyError):
            default_index = -1
    out = []
    for device in devices:
        if int(device["max_input_channels"]) < 1:
            continue
        out.append(
            InputDevice(
                index=int(device["index"]),
                name=str(device["name"]),
                hostapi=str(hostapis[device["hostapi"]]["name"]),
                channels=int(device["max_input_channels"]),
                default_samplerate=float(device["default_samplerate"]),
                is_default=int(device["index"]) == default_index,
            )
        )
    return out


def _candidates(devices: Sequence[InputDevice], limit: int = 8) -> str:
    shown = ", ".join(f"{d.index} '{d.name}'" for d in devices[:limit])
    return shown if len(devices) <= limit else f"{shown} and {len(devices) - limit} more"


def match_device(spec: str | int | None, devices: Sequence[InputDevice]) -> InputDevice:
    """The input device that ``spec`` names.

    Parameters
    ----------
    spec : str, int or None
        ``None`` for the default input; an index; or a case-insensitive name or part of one
        (an exact name wins over partial matches).
    devices : sequence of InputDevice
        The input devices (see :func:`list_input_devices`).

    Raises
    ------
    ListenError
        No input device at all, no default, an unknown index or name, or a name that matches
        several devices (the message lists the candidates).
    """
    if not devices:
        raise ListenError(
            "no input device found: PortAudio sees no microphone (`edge-asc devices` lists "
            "what it sees)"
        )
    if spec is None:
        for device in devices:
            if device.is_default:
                return device
        raise ListenError(
            f"there is no default input device; pick one with --device ({_candidates(devices)})"
        )
    text = str(spec).strip()
    if text.isdigit():
        index = int(text)
        for device in devices:
            if device.index == index:
                return device
        raise ListenError(
            f"no input device has index {index}; input devices: {_candidates(devices)}"
        )
    wanted = text.casefold()
    exact = [d for d in devices if d.name.casefold() == wanted]
    matches = exact or [d for d in devices if wanted in d.name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ListenError(
            f"no input device matches {text!r}; input devices: {_candidates(devices)}"
        )
    raise ListenError(
        f"input device name {text!r} is ambiguous: it matches {_candidates(matches)}; "
        "give the index"
    )


def open_device(spec: str | int | None) -> tuple[int, str, float]:
    """Find the input device ``spec`` names (see :func:`match_device`).

    Returns
    -------
    tuple
        ``(index, name, default_samplerate)``.
    """
    device = match_device(spec, list_input_devices())
    return device.index, device.name, device.default_samplerate


def stream_settings(index: int, model_rate: int, native_rate: float) -> tuple[float, int]:
    """The rate and channel count to open device ``index`` with.

    The model's rate when the device says it supports it (no resampling needed), otherwise
    its native rate (the worker resamples); one channel if allowed, else two (downmixed).
    """
    sd = _sounddevice()
    max_channels = int(sd.query_devices(index)["max_input_channels"])

    def supported(rate: float, channels: int) -> bool:
        try:
            sd.check_input_settings(
                device=index, samplerate=rate, channels=channels, dtype="float32"
            )
        except (sd.PortAudioError, ValueError):
            return False
        return True

    channels = 1 if supported(native_rate, 1) else min(2, max_channels)
    rate = float(model_rate) if supported(model_rate, channels) else float(native_rate)
    return rate, channels


class _NativeStderrParked:
    """While a stream runs, send C-level writes to fd 2 (PortAudio, ALSA) to /dev/null.

    PortAudio prints its own diagnostics ("Expression ... failed") from its audio thread when
    a device disappears, which would break one-line errors. Python's ``sys.stderr`` is moved
    to a duplicate of the real stderr meanwhile, so messages from Python still show.
    """

    def __init__(self) -> None:
        self._saved_fd: int | None = None
        self._saved_stream: Any = None

    def park(self) -> None:
        if self._saved_fd is not None:
            return
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # no real stderr (a test runner)
            return
        sys.stderr.flush()
        self._saved_fd = os.dup(fd)
        self._saved_stream = sys.stderr
        sys.stderr = open(  # closed in restore()
            self._saved_fd,
            "w",
            buffering=1,
            encoding=sys.stderr.encoding,
            errors="backslashreplace",
            closefd=False,
        )
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)

    def restore(self) -> None:
        if self._saved_fd is None:
            return
        parked, sys.stderr = sys.stderr, self._saved_stream
        parked.flush()
        parked.close()
        os.dup2(self._saved_fd, sys.stderr.fileno())
        os.close(self._saved_fd)
        self._saved_fd = None


class MicrophoneSource(BlockSource):
    """A PortAudio input stream whose callback only copies blocks into the queue.

    Parameters
    ----------
    index : int
        PortAudio device index.
    name : str
        Device name, for messages.
    sample_rate : float
        Rate to open the device at.
    channels : int
        Channels to record (the worker downmixes them).
    block_frames : int
        Frames per callback.
    stall_s : float
        Report the device as gone after this long without a block.
    """

    def __init__(
        self,
        index: int,
        name: str,
        sample_rate: float,
        channels: int = 1,
        block_frames: int = BLOCK_FRAMES,
        stall_s: float = STALL_SECONDS,
    ) -> None:
        super().__init__(
            f"'{name}' (device {index})",
            sample_rate,
            channels,
            _queue_blocks(sample_rate, block_frames),
        )
        self.index, self.block_frames, self.stall_s = index, block_frames, stall_s
        self._stream: Any = None
        self._last_block = time.monotonic()
        self._stderr = _NativeStderrParked()

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: copy and return. Never wait, never raise.
        if status.input_overflow:
            self.overflows += 1
        self.queue.offer(indata)

    def start(self) -> None:
        sd = _sounddevice()
        self._stderr.park()
        try:
            self._stream = sd.InputStream(
                device=self.index,
                samplerate=self.sample_rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self.block_frames,
                callback=self._callback,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self.stop()
            raise ListenError(
                f"cannot open input device {self.name} at {self.sample_rate:g} Hz: {exc}"
            ) from None
        self._last_block = time.monotonic()

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        try:
            if stream is not None:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
        except Exception:  # a device that is already gone cannot be closed any further
            pass
        finally:
            self._stderr.restore()

    def blocks(self) -> Iterator[np.ndarray]:
        for block in super().blocks():
            self._last_block = time.monotonic()
            yield block

    def _idle(self) -> None:
        stream = self._stream
        if stream is None or not stream.active:
            raise ListenError(f"input device {self.name} stopped delivering audio (unplugged?)")
        if time.monotonic() - self._last_block > self.stall_s:
            raise ListenError(f"no audio from input device {self.name} for {self.stall_s:g} s")


def microphone_source(
    device: str | int | None, model_rate: int, block_frames: int = BLOCK_FRAMES
) -> MicrophoneSource:
    """A :class:`MicrophoneSource` for the device ``device`` names; not started yet.

    Opened at the model's rate when the device supports it, else at its native rate.

    Raises
    ------
    ListenError
        PortAudio missing, no input device, or ``device`` unknown or ambiguous.
    """
    index, name, native = open_device(device)
    rate, channels = stream_settings(index, model_rate, native)
    return MicrophoneSource(index, name, rate, channels, block_frames)


# ---------------------------------------------------------------------------------------------
# The worker


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
        RMS level of the audio since the previous update, in dB full scale.
    patches : list of PatchResult
        The patches completed in this step.
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
    patches: list[PatchResult] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: one line of ``edge-asc listen --jsonl``."""
        return {
            "t": round(self.t, 3),
            "audio_s": round(self.audio_s, 3),
            "label": self.label,
            "score": round(self.score, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "window_label": self.window_label,
            "compute_ms": round(self.compute_ms, 3),
            "dropped_blocks": self.dropped_blocks,
            "overflows": self.overflows,
            "level_dbfs": round(self.level_dbfs, 1),
            "patches": len(self.patches),
        }


def _dbfs(sum_squares: float, count: int) -> float:
    if count == 0:
        return -math.inf
    return 10 * math.log10(max(sum_squares / count, 1e-20))


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
        The label's smoothing and hysteresis (the engine's defaults when omitted).
    backend : str
        ``auto``, ``tflite`` or ``onnx`` (see :func:`edge_asc.inference.open_model`).

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
    ) -> None:
        self.engine = StreamingClassifier(bundle, kinds, threads=threads, backend=backend)
        self.labels = bundle.labels
        self.window = SceneWindow(
            self.engine.kinds, len(self.labels), window_s, fusion or bundle.default_fusion
        )
        self.smoother = smoother or LabelSmoother()
        self.audio_s = 0.0
        self.updates = 0
        self.last: Update | None = None

    @property
    def sample_rate(self) -> int:
        """The model's sample rate."""
        return self.engine.sample_rate

    def run(self, source: BlockSource, duration_s: float | None = None) -> Iterator[Update]:
        """Consume ``source`` (already started) and yield an :class:`Update` per new patch.

        Parameters
        ----------
        source : BlockSource
            Where blocks come from.
        duration_s : float, optional
            Stop after this many seconds of audio.
        """
        in_rate = source.sample_rate
        resampler = None
        if in_rate != self.engine.sample_rate:
            resampler = soxr.ResampleStream(
                in_rate, self.engine.sample_rate, 1, dtype="float32", quality=_RESAMPLE_QUALITY
            )
        limit = None if duration_s is None else max(0, round(duration_s * in_rate))
        frames_in = 0
        compute = 0.0
        sum_squares, count = 0.0, 0
        blocks = source.blocks()
        try:
            for block in blocks:
                mono = _downmix(block)
                if limit is not None:
                    mono = mono[: limit - frames_in]
                frames_in += mono.size
                self.audio_s = frames_in / in_rate
                sum_squares += float(np.dot(mono, mono))
                count += mono.size
                last = limit is not None and frames_in >= limit
                started = time.perf_counter()
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                patches = self.engine.push(mono)
                compute += time.perf_counter() - started
                if patches:
                    yield self._update(patches, source, compute, _dbfs(sum_squares, count))
                    compute, sum_squares, count = 0.0, 0.0, 0
                if last:
                    return
            if resampler is not None:  # the stream ended: flush what the resampler holds
                started = time.perf_counter()
                patches = self.engine.push(
                    resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                )
                compute += time.perf_counter() - started
                if patches:
                    yield self._update(patches, source, compute, _dbfs(sum_squares, count))
        finally:
            blocks.close()

    def _update(
        self, patches: list[PatchResult], source: BlockSource, compute: float, level: float
    ) -> Update:
        self.window.add(patches)
        fused, _ = self.window.scores()
        assert fused is not None  # there is at least one patch
        label = self.smoother.update(fused)
        scores = {name: float(s) for name, s in zip(self.labels, fused, strict=True)}
        self.updates += 1
        self.last = Update(
            t=time.time(),
            audio_s=self.audio_s,
            label=self.labels[label],
            score=float(fused[label]),
            scores=scores,
            window_label=self.labels[int(np.argmax(fused))],
            compute_ms=compute * 1000,
            dropped_blocks=source.queue.dropped_blocks,
            overflows=source.overflows,
            level_dbfs=level,
            patches=patches,
        )
        return self.last


def _downmix(block: np.ndarray) -> np.ndarray:
    data = np.asarray(block, dtype=np.float32)
    if data.ndim == 1:
        return data
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The live view


def render(update: Update | None, source_name: str = "", waiting_s: float = 0.0) -> Any:
    """The live view of one update: label, top-3 bars, compute time, drops, audio heard.

    Parameters
    ----------
    update : Update or None
        The latest update; ``None`` before the first patch.
    source_name : str
        What is being listened to (panel title).
    waiting_s : float
        Before the first update: audio the models need for their first patch.

    Returns
    -------
    rich.panel.Panel
        A renderable for :class:`rich.live.Live`.
    """
    from rich.bar import Bar
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    title = f"edge-asc listen {source_name}".strip()
    if update is None:
        text = Text(f"waiting for the first patch ({waiting_s:.1f} s of audio) ...", style="dim")
        return Panel(text, title=title, title_align="left", expand=False)
    label = Text.assemble(
        (update.label, "bold green"), ("  steady label", "dim"), (f"  {update.score:.2f}", "")
    )
    bars = Table.grid(padding=(0, 1))
    bars.add_column(no_wrap=True)
    bars.add_column(width=30)
    bars.add_column(justify="right")
    for name, score in sorted(update.scores.items(), key=lambda kv: -kv[1])[:3]:
        style = "bold" if name == update.window_label else ""
        bars.add_row(
            Text(name, style=style), Bar(1.0, 0.0, score, width=30, color="cyan"), f"{score:.2f}"
        )
    footer = Text(
        f"compute {update.compute_ms:.1f} ms  |  dropped {update.dropped_blocks} blocks  |  "
        f"heard {update.audio_s:.1f} s  |  level {update.level_dbfs:.0f} dBFS",
        style="dim",
    )
    return Panel(
        Group(label, Text(""), bars, Text(""), footer),
        title=title,
        title_align="left",
        expand=False,
    )


def summary(listener: Listener, source: BlockSource) -> str:
    """One line for stderr when listening ends."""
    last = listener.last
    label = f"last label {last.label!r}" if last else "no patch completed"
    overflows = f", {source.overflows} overflows" if source.overflows else ""
    return (
        f"edge-asc: heard {listener.audio_s:.1f} s of audio from {source.name}, "
        f"{listener.updates} updates, {label}, {source.queue.dropped_blocks} dropped blocks"
        f"{overflows}"
    )
