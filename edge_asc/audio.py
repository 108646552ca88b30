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
import stat
import struct
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from edge_asc.errors import EdgeAscError, EdgeAscWarning

MIN_SAMPLE_RATE = 1_000
"""Lowest sample rate accepted as a target, in Hz."""

MAX_SAMPLE_RATE = 384_000
"""Highest sample rate accepted as a target, in Hz."""

MIN_FILE_SAMPLE_RATE = 1_000
"""Lowest sample rate accepted in a file's header, in Hz."""

MAX_FILE_SAMPLE_RATE = 768_000
"""Highest sample rate accepted in a file's header, in Hz (DXD and 768 kHz recorders)."""

MAX_CHANNELS = 64
"""Most channels accepted in a file's header (a 64-capsule microphone array)."""

MAX_SAMPLES_PER_BYTE = 8192
"""Upper bound of ``frames * channels / file size`` for compressed formats.

Lossless and lossy codecs shrink digital silence a long way (FLAC to a few bytes per block of
up to 65 535 samples), so the bound is loose; it only rejects headers that are absurd.
"""

RESAMPLE_QUALITY = "HQ"
"""soxr quality of every resampling in edge-asc (files, replays and microphones alike)."""

_LOAD_BLOCK_FRAMES = 1 << 20

# Containers that store samples as they are (FLAC also says PCM_16, but compresses), and
# the bytes per sample of their subtypes: for these, the file size bounds the frame count.
_UNCOMPRESSED_FORMATS = frozenset({"WAV", "WAVEX", "AIFF", "AU", "W64", "RF64", "CAF", "NIST"})
_PCM_BYTES = {
    "PCM_S8": 1,
    "PCM_U8": 1,
    "PCM_16": 2,
    "PCM_24": 3,
    "PCM_32": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
    "ULAW": 1,
    "ALAW": 1,
}

# What soundfile raises for input it cannot handle: LibsndfileError (a RuntimeError) for
# unreadable, foreign or corrupt files, OSError for some system errors, and TypeError for
# files it cannot open without being told the layout (a ``.raw`` extension).
_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError, TypeError)


class AudioError(EdgeAscError):
    """An audio file that cannot be used; ``str()`` is one line naming the file."""


class AudioWarning(EdgeAscWarning):
    """An audio file that is read, but not all of it is what its header says; one line."""


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
    size = _regular_file_size(path)
    with _reading(path), _quiet_native_stderr():
        info = sf.info(os.fspath(path))
    rate, channels, frames = int(info.samplerate), int(info.channels), int(info.frames)
    name = _quote(path)
    if not MIN_FILE_SAMPLE_RATE <= rate <= MAX_FILE_SAMPLE_RATE:
        raise AudioError(
            f"{name} claims a sample rate of {rate} Hz "
            f"(accepted: {MIN_FILE_SAMPLE_RATE} to {MAX_FILE_SAMPLE_RATE} Hz)"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name} claims {channels} channels (accepted: 1 to {MAX_CHANNELS})")
    if frames < 0:
        raise AudioError(f"{name} claims {frames} frames")
    sample_bytes = None
    if str(info.format) in _UNCOMPRESSED_FORMATS:
        sample_bytes = _PCM_BYTES.get(str(info.subtype))
    if sample_bytes is not None:
        if frames * channels * sample_bytes > size:
            raise AudioError(
                f"{name} claims {frames} frames of {channels} channel(s), more than its "
                f"{size} bytes can hold"
            )
        _warn_if_cut_short(path, size, rate, channels, sample_bytes)
    elif frames * channels > size * MAX_SAMPLES_PER_BYTE:
        raise AudioError(
            f"{name} claims {frames} frames of {channels} channel(s), implausible for {size} bytes"
        )
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
    with _reading(path), _quiet_native_stderr():
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
        raise AudioError(f"{_quote(path)} holds no audio samples")
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
        raise AudioError(f"{_quote(path)} holds no audio samples")
    if info.sample_rate < target:
        # Upsampling: read fewer frames per step so each block stays near block_frames.
        frames = max(1, math.ceil(frames * info.sample_rate / target))
    return _stream_blocks(path, target, frames)


def _stream_blocks(
    path: str | os.PathLike[str], target: int, block_frames: int
) -> Iterator[np.ndarray]:
    with _reading(path), _quiet_native_stderr():
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
            raise AudioError(f"{_quote(path)} holds no audio samples")
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
        raise AudioError(f"{_quote(path)} contains NaN or infinite samples")
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    # Sum in float64 so that loud float files cannot overflow float32 part-way.
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)


def _regular_file_size(path: str | os.PathLike[str]) -> int:
    """The size of ``path`` in bytes, after checking, without opening it, that it is a file.

    ``os.stat`` does not block on a FIFO and follows symbolic links, so a link to
    ``/dev/zero`` is seen for the device it is.
    """
    name = _quote(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"cannot read {name}: file not found") from None
    except OSError as exc:
        reason = _one_line(exc.strerror or str(exc)).lower()
        raise AudioError(f"cannot read {name}: {reason}") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(f"{name} is a directory, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(f"{name} is a {_file_kind(info.st_mode)}, not a regular audio file")
    return info.st_size


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    )
    return next((what for test, what in kinds if test(mode)), "special file")


def _warn_if_cut_short(
    path: str | os.PathLike[str], size: int, rate: int, channels: int, sample_bytes: int
) -> None:
    """Warn when the data chunk of a WAV or AIFF file promises more bytes than remain."""
    found = _data_chunk(path)
    if found is None:
        return
    offset, declared = found
    available = max(0, size - offset)
    if declared <= available:
        return
    frame_bytes = channels * sample_bytes
    promised, held = declared // frame_bytes / rate, available // frame_bytes / rate
    warnings.warn(
        AudioWarning(
            f"{_quote(path)} is cut short: its header promises {promised:.2f} s, the file "
            f"holds {held:.2f} s; reading what is there"
        ),
        stacklevel=3,
    )


def _data_chunk(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(offset, declared size)`` of the sample data of a RIFF WAV or an AIFF, else None.

    Sizes that streaming writers leave as placeholders (0 and 0xFFFFFFFF, RF64) are not
    claims, so they are not reported.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12:
                return None
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                endian, data_id, extra = "<", b"data", 0
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                endian, data_id, extra = ">", b"SSND", 8  # SSND starts with offset, block size
            else:
                return None
            for _ in range(64):
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                chunk_id, chunk_size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
                if chunk_id == data_id:
                    if chunk_size in (0, 0xFFFFFFFF) or chunk_size < extra:
                        return None
                    return f.tell() + extra, chunk_size - extra
                f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)
    except OSError:
        return None
    return None


def _too_long(path: str | os.PathLike[str], seconds: float, limit: float) -> str:
    return f"{_quote(path)} is too long to hold in memory ({seconds:.0f} s; at most {limit:.0f} s)"


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 to ``/dev/null`` inside the block.

    While libsndfile probes a file's format, libmpg123 prints its own complaints about
    anything that looks a little like MPEG ("[src/libmpg123/parse.c:...] warning: ...")
    straight to stderr, a second line beside edge-asc's one-line error. Python's own
    ``sys.stderr`` is flushed first and is unaffected afterwards.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no usable descriptor 2 (embedded, closed): nothing to silence
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
    name = _quote(path)
    fs_path = os.fspath(path)
    if os.path.isdir(fs_path):
        return f"{name} is a directory, not an audio file"
    if not os.path.exists(fs_path):
        return f"cannot read {name}: file not found"
    try:
        with open(fs_path, "rb"):
            pass
    except OSError as os_exc:
        return f"cannot read {name}: {_one_line(os_exc.strerror or str(os_exc)).lower()}"
    if isinstance(exc, sf.LibsndfileError):
        reason = exc.error_string
    else:
        reason = str(exc)
    reason = _one_line(reason).removeprefix("Error : ").rstrip(".") or type(exc).__name__
    if "possibly a pipe" in reason:  # libsndfile's MPEG probe, about a file we know is regular
        reason = "Format not recognised"
    return f"cannot read {name}: not an audio file or corrupt ({reason})"


def _quote(path: str | os.PathLike[str]) -> str:
    """The path as the user gave it, in single quotes, with control characters escaped."""
    text = os.fsdecode(path)
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + "'"


def _one_line(text: str) -> str:
    return " ".join(text.split())
