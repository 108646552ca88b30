"""Any stream or file FFmpeg reads (RTSP cameras, HTTP/Icecast, ALSA devices) as a source.

An ``ffmpeg`` subprocess decodes the input to mono float32 at the model's rate on its standard
output; a reader thread cuts that into blocks and offers them to the queue without waiting,
like a microphone callback. When a live stream drops, FFmpeg exits and the source starts it
again after a back-off (1 s, doubling to 30 s), counting reconnections, so a camera that
reboots costs a gap in the labels, never the process. A local file (no ``scheme://``) is read
once, as fast as the consumer takes it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time

import numpy as np

from edge_asc.sources.base import BlockSource, queue_blocks
from edge_asc.sources.devices import ListenError
from edge_asc.sources.replay import BLOCK_FRAMES

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

MAX_BACKOFF_S = 30.0
"""Longest wait between two attempts to reach a stream."""


def is_stream_url(text: str) -> bool:
    """Whether ``text`` names a network stream (``scheme://...``) rather than a file."""
    return bool(_URL.match(text))


def ffmpeg_command(url: str, sample_rate: int) -> list[str]:
    """The FFmpeg command line that decodes ``url`` to mono float32 on standard output."""
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    if is_stream_url(url):
        # Start at once: no seconds of probing and buffering before the first sample.
        command += ["-fflags", "nobuffer", "-probesize", "32768", "-analyzeduration", "0"]
    if url.startswith(("rtsp://", "rtsps://")):
        command += ["-rtsp_transport", "tcp"]  # through NATs and firewalls, no lost packets
    command += ["-i", url, "-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    return command


class FfmpegSource(BlockSource):
    """A stream or file decoded by an ``ffmpeg`` subprocess, restarted when a stream drops.

    Parameters
    ----------
    url : str
        What FFmpeg should read: ``rtsp://``, ``http://``, a file, ``alsa`` device names with
        ``input_format``...
    sample_rate : int
        Rate FFmpeg resamples to (the model's, so no second resampling is needed).
    name : str, optional
        The source's name in every output (the URL without credentials by default).
    block_frames : int
        Frames per block.
    reconnect : bool, optional
        Restart FFmpeg when it ends; by default for stream URLs, not for files.
    stall_s : float
        A running FFmpeg that delivers nothing for this long is restarted.
    """

    def __init__(
        self,
        url: str,
        sample_rate: int,
        name: str | None = None,
        block_frames: int = BLOCK_FRAMES,
        reconnect: bool | None = None,
        stall_s: float = 15.0,
    ) -> None:
        if shutil.which("ffmpeg") is None:
            raise ListenError("stream inputs need FFmpeg: apt-get install ffmpeg")
        super().__init__(
            name or re.sub(r"//[^/@]*@", "//", url),
            sample_rate,
            1,
            queue_blocks(sample_rate, block_frames),
        )
        self.url, self.block_frames, self.stall_s = url, block_frames, stall_s
        self.live = is_stream_url(url) if reconnect is None else reconnect
        self.reconnects = 0
        self.connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._last_data = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edge-asc-ffmpeg", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def _idle(self) -> None:
        if self.live and self.connected and time.monotonic() - self._last_data > self.stall_s:
            self._kill()  # the reader sees the end of the pipe and starts FFmpeg again

    def _run(self) -> None:
        backoff = 1.0
        try:
            while not self._stop.is_set():
                delivered = self._read_once()
                if self._stop.is_set():
                    return
                if not self.live:
                    if not delivered:
                        raise ListenError(f"FFmpeg could not read {self.name}")
                    break
                self.reconnects += 1
                backoff = 1.0 if delivered else min(backoff * 2, MAX_BACKOFF_S)
                if self._stop.wait(backoff):
                    return
            self.queue.close()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self.queue.fail(exc)

    def _read_once(self) -> bool:
        """Run FFmpeg until it ends; return whether it delivered any audio."""
        bytes_per_block = 4 * self.block_frames
        self._process = process = subprocess.Popen(
            ffmpeg_command(self.url, int(self.sample_rate)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        delivered = False
        pending = b""
        try:
            assert process.stdout is not None
            while not self._stop.is_set():
                chunk = process.stdout.read1(bytes_per_block)  # type: ignore[attr-defined]
                if not chunk:
                    break
                self._last_data = time.monotonic()
                self.connected = delivered = True
                pending += chunk
                whole = len(pending) // bytes_per_block * bytes_per_block
                for start in range(0, whole, bytes_per_block):
                    self._deliver(pending[start : start + bytes_per_block])
                pending = pending[whole:]
            usable = len(pending) // 4 * 4
            if usable and not self._stop.is_set():
                self._deliver(pending[:usable])
        finally:
            self.connected = False
            self._kill()
            process.wait()
        return delivered

    def _deliver(self, raw: bytes) -> None:
        block = np.frombuffer(raw, dtype="<f4")
        if self.live:
            self.queue.offer(block)  # a live stream does not wait for a slow consumer
        else:
            self.queue.put(block, self._stop)
