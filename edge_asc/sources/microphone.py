"""The microphone: a PortAudio input stream whose callback only copies blocks into the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from edge_asc.native_stderr import NativeStderrParked
from edge_asc.sources.base import BlockSource, queue_blocks
from edge_asc.sources.devices import ListenError, open_device, sounddevice_module, stream_settings
from edge_asc.sources.replay import BLOCK_FRAMES

STALL_SECONDS = 5.0
"""A microphone that delivers nothing for this long is reported as gone."""


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
            queue_blocks(sample_rate, block_frames),
        )
        self.index, self.block_frames, self.stall_s = index, block_frames, stall_s
        self._stream: Any = None
        self._last_block = time.monotonic()
        self._stderr = NativeStderrParked()

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: copy and return. Never wait, never raise.
        if status.input_overflow:
            self.overflows += 1
        self.queue.offer(indata)

    def start(self) -> None:
        sd = sounddevice_module()
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
