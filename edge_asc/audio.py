"""Reading audio files into the mono float32 signal every other part of the project expects.

The CLI, training and evaluation all start from "a path somebody gave us". This module is the
one place that turns such a path into a 1-D float32 signal at the model's sample rate: it reads
anything libsndfile reads (WAV, FLAC, OGG, ...), averages the channels, and resamples with soxr.
Every bad-input case (missing file, directory, corrupt or empty file, NaN samples, absurd sample
rate) becomes an :class:`AudioError` whose message is one line naming the file, so the CLI can
print it as-is instead of a libsndfile traceback.

A header is a claim, not a fact, so it is checked before a single sample is decoded: a WAV
saying "1 Hz" would otherwise be resampled 44 100-fold (a 220 KB file became 8 GB), one saying
"1000 channels" would be read as a few frames of nothing, and a FIFO or ``/dev/zero`` given as
the path would block or never end. Only regular files are opened (checked with ``os.stat``
first, which never blocks), the file's own rate must lie in ``[MIN_FILE_SAMPLE_RATE,
MAX_FILE_SAMPLE_RATE]``, its channel count be at most :data:`MAX_CHANNELS`, and the frame count
must be possible for the file's size. A WAV or AIFF whose data chunk promises more bytes than
the file holds (a recording cut short) is still read, up to where it ends, with one
:class:`AudioWarning`; other formats fail at the damage with an :class:`AudioError`.

Long recordings can be streamed with :func:`iter_audio_blocks`, whose concatenated output
matches :func:`load_audio` while holding only one block in memory.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from edge_asc.audio_header import (
    MAX_CHANNELS,
    MAX_FILE_SAMPLE_RATE,
    MIN_FILE_SAMPLE_RATE,
    AudioError,
    AudioWarning,
    check_header,
    quote_path,
    regular_file_size,
)
from edge_asc.errors import one_line
from edge_asc.native_stderr import native_stderr_silenced

__all__ = [
    "MAX_CHANNELS",
    "MAX_FILE_SAMPLE_RATE",
    "MIN_FILE_SAMPLE_RATE",
    "AudioError",
    "AudioInfo",
    "AudioWarning",
    "audio_info",
    "iter_audio_blocks",
    "load_audio",
    "validate_sample_rate",
]

MIN_SAMPLE_RATE = 1_000
"""Lowest sample rate accepted as a target, in Hz."""

MAX_SAMPLE_RATE = 384_000
"""Highest sample rate accepted as a target, in Hz."""

RESAMPLE_QUALITY = "HQ"
"""soxr quality of every resampling in edge-asc (files, replays and microphones alike)."""

_LOAD_BLOCK_FRAMES = 1 << 20

_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError, TypeError)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says about it.

    Parameters
    ----------
    sample_rate : int
        Samples per second per channel, in Hz.
    channels : int
        Number of channels.
    frames : int
        Number of samples per channel.
    duration_s : float
        ``frames / sample_rate``, in seconds.
    """

    sample_rate: int
    channels: int
    frames: int
    duration_s: float


def validate_sample_rate(sample_rate: int) -> int:
    """Check that a requested sample rate is a plausible audio rate.

    Parameters
    ----------
    sample_rate : int
        Rate in Hz. Any integer type is accepted (``numpy.int64`` included); ``bool`` and
        non-integers are not.

    Returns
    -------
    int
        The rate as a plain ``int``.

    Raises
    ------
    AudioError
        If the rate is not an integer, or outside ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]``.
    """
    if isinstance(sample_rate, bool):
        raise AudioError(f"sample rate must be a whole number of Hz, got {sample_rate!r}")
    try:
        rate = operator.index(sample_rate)
    except TypeError:
        raise AudioError(f"sample rate must be a whole number of Hz, got {sample_rate!r}") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"sample rate {rate} Hz is out of range "
            f"(expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)"
        )
    return rate


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the header of an audio file without decoding its samples.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.

    Returns
    -------
    AudioInfo
        Sample rate, channel count, frame count and duration. A file with no samples is
        reported as such (``frames == 0``), not rejected.

    Raises
    ------
    AudioError
        If the file is missing, not a regular file (a directory, FIFO, device or socket), not
        something libsndfile can open, or its header is implausible: a sample rate outside
        ``[MIN_FILE_SAMPLE_RATE, MAX_FILE_SAMPLE_RATE]``, more than :data:`MAX_CHANNELS`
        channels, or more frames than the file's size can hold. A file whose header is
        intact but whose data is damaged may pass here and fail only when read.

    Warns
    -----
    AudioWarning
        If a WAV or AIFF file is shorter than its data chunk says (cut short); ``frames``
        is then what the file really holds.
    """
    size = regular_file_size(path)
    with _reading(path), native_stderr_silenced():
        info = sf.info(os.fspath(path))
    rate, channels, frames = check_header(path, info, size)
    return AudioInfo(
        sample_rate=rate, channels=channels, frames=frames, duration_s=float(frames) / rate
    )


def load_audio(
    path: str | os.PathLike[str], sample_rate: int, max_seconds: float | None = None
) -> np.ndarray:
    """Read a whole audio file as a mono float32 signal at ``sample_rate``.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file, in any format libsndfile reads.
    sample_rate : int
        Rate of the returned signal, in Hz. The file is resampled with soxr (quality
        ``"HQ"``) when its own rate differs; otherwise its samples are returned unchanged.
    max_seconds : float, optional
        Refuse files longer than this (checked on the header, then again while reading).

    Returns
    -------
    numpy.ndarray
        1-D float32 array, the mean of the file's channels, in libsndfile's [-1, 1) scale.

    Raises
    ------
    AudioError
        If ``sample_rate`` is implausible, the file fails :func:`audio_info`'s checks, is
        unreadable, corrupt, holds no samples, holds NaN or infinite samples, or is longer
        than ``max_seconds``.

    Notes
    -----
    The whole file is held in memory (about ``4 * frames`` bytes for the mono signal, plus
    the resampled copy): stream long files with :func:`iter_audio_blocks` instead, or bound
    them with ``max_seconds``. Memory follows what is really decoded, never the frame count
    the header claims.
    """
    target = validate_sample_rate(sample_rate)
    info = audio_info(path)
    if max_seconds is not None and info.duration_s > max_seconds:
        raise AudioError(_too_long(path, info.duration_s, max_seconds))
    parts: list[np.ndarray] = []
    with _reading(path), native_stderr_silenced():
        handle = sf.SoundFile(os.fspath(path))
    with handle:
        file_rate = handle.samplerate
        read = 0
        while (block := _read_block(handle, _LOAD_BLOCK_FRAMES, path)) is not None:
            parts.append(block)
            read += block.size
            if max_seconds is not None and read / file_rate > max_seconds:
                raise AudioError(_too_long(path, read / file_rate, max_seconds))
    if not parts:
        raise AudioError(f"{quote_path(path)} holds no audio samples")
    mono = parts[0] if len(parts) == 1 else np.concatenate(parts)
    del parts
    if file_rate != target:
        mono = soxr.resample(mono, file_rate, target, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(mono, dtype=np.float32)


def iter_audio_blocks(
    path: str | os.PathLike[str], sample_rate: int, block_frames: int = 65536
) -> Iterator[np.ndarray]:
    """Stream an audio file as mono float32 blocks at ``sample_rate``.

    Memory stays bounded by ``block_frames`` however long the file is. Joined together, the
    blocks match :func:`load_audio` on the same file (identical when no resampling is needed;
    otherwise the same soxr filter run incrementally).

    Parameters
    ----------
    path : str or os.PathLike
        The audio file, in any format libsndfile reads.
    sample_rate : int
        Rate of the yielded signal, in Hz.
    block_frames : int, optional
        Frames read from the file per step (before resampling), by default 65536. When the
        file's rate is below ``sample_rate``, proportionally fewer are read, so that a block
        stays near ``block_frames`` samples after upsampling too.

    Returns
    -------
    Iterator[numpy.ndarray]
        Non-empty 1-D float32 arrays. Their lengths vary: the resampler holds back a few
        samples at the start and releases them at the end.

    Raises
    ------
    AudioError
        At call time, before anything is yielded, if ``sample_rate`` is implausible or the
        file is missing, a directory, not audio, or empty. During iteration, if reading
        fails part-way (a truncated or damaged file) or a block holds NaN or infinite
        samples; blocks yielded before that point were valid.
    ValueError
        If ``block_frames`` is not a positive integer.
    """
    target = validate_sample_rate(sample_rate)
    try:
        frames = 0 if isinstance(block_frames, bool) else operator.index(block_frames)
    except TypeError:
        frames = 0
    if frames < 1:
        raise ValueError(f"block_frames must be a positive integer, got {block_frames!r}")
    # Open once now so that a bad path fails here, at the call, not at the first next().
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(f"{quote_path(path)} holds no audio samples")
    if info.sample_rate < target:
        # Upsampling: read fewer frames per step so each block stays near block_frames.
        frames = max(1, math.ceil(frames * info.sample_rate / target))
    return _stream_blocks(path, target, frames)


def _stream_blocks(
    path: str | os.PathLike[str], target: int, block_frames: int
) -> Iterator[np.ndarray]:
    with _reading(path), native_stderr_silenced():
        handle = sf.SoundFile(os.fspath(path))
    with handle:
        stream = None
        if handle.samplerate != target:
            stream = soxr.ResampleStream(
                handle.samplerate, target, 1, dtype="float32", quality=RESAMPLE_QUALITY
            )
        # Read one block ahead, so the resampler is told which block is the last one and
        # flushes the samples it is holding back.
        current = _read_block(handle, block_frames, path)
        if current is None:
            raise AudioError(f"{quote_path(path)} holds no audio samples")
        while current is not None:
            following = _read_block(handle, block_frames, path)
            out = current
            if stream is not None:
                out = stream.resample_chunk(current, last=following is None)
            if out.size:
                yield out
            current = following


def _read_block(
    handle: sf.SoundFile, frames: int, path: str | os.PathLike[str]
) -> np.ndarray | None:
    """The next block of ``handle`` as checked mono float32, or ``None`` at end of file."""
    with _reading(path):
        block = handle.read(frames, dtype="float32", always_2d=True)
    if block.shape[0] == 0:
        return None
    return _downmix_checked(block, path)


def _downmix_checked(data: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """Average the channels of a ``(frames, channels)`` block after rejecting non-finite values."""
    if not np.isfinite(data).all():
        raise AudioError(f"{quote_path(path)} contains NaN or infinite samples")
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    # Sum in float64 so that loud float files cannot overflow float32 part-way.
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)


def _too_long(path: str | os.PathLike[str], seconds: float, limit: float) -> str:
    return (
        f"{quote_path(path)} is too long to hold in memory ({seconds:.0f} s; at most {limit:.0f} s)"
    )


@contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn whatever soundfile raises inside the block into a one-line :class:`AudioError`."""
    try:
        yield
    except _READ_ERRORS as exc:
        raise AudioError(_describe_failure(path, exc)) from exc


def _describe_failure(path: str | os.PathLike[str], exc: BaseException) -> str:
    """A one-line reason for a failed open or read, checked against the filesystem.

    libsndfile's own messages are unhelpful for the common cases ("System error." for a
    missing file, "Format not recognised." for a directory), so those are diagnosed here.
    """
    name = quote_path(path)
    fs_path = os.fspath(path)
    if os.path.isdir(fs_path):
        return f"{name} is a directory, not an audio file"
    if not os.path.exists(fs_path):
        return f"cannot read {name}: file not found"
    try:
        with open(fs_path, "rb"):
            pass
    except OSError as os_exc:
        return f"cannot read {name}: {one_line(os_exc.strerror or str(os_exc)).lower()}"
    if isinstance(exc, sf.LibsndfileError):
        reason = exc.error_string
    else:
        reason = str(exc)
    reason = one_line(reason).removeprefix("Error : ").rstrip(".") or type(exc).__name__
    if "possibly a pipe" in reason:  # libsndfile's MPEG probe, about a file we know is regular
        reason = "Format not recognised"
    return f"cannot read {name}: not an audio file or corrupt ({reason})"
