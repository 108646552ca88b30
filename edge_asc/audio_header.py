"""What an audio file's header claims, checked before a single sample is decoded.

A header is a claim, not a fact: a WAV saying "1 Hz" would be resampled 44 100-fold (a 220 KB
file became 8 GB), one saying "1000 channels" would be read as a few frames of nothing, and a
FIFO or ``/dev/zero`` given as the path would block or never end. So only regular files are
opened (checked with ``os.stat``, which never blocks), and the rate, the channel count and the
frame count must be possible for the file's size.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from typing import Any

from edge_asc.errors import EdgeAscError, EdgeAscWarning, one_line

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
class AudioError(EdgeAscError):
    """An audio file that cannot be used; ``str()`` is one line naming the file."""


class AudioWarning(EdgeAscWarning):
    """An audio file that is read, but not all of it is what its header says; one line."""


def check_header(path: str | os.PathLike[str], info: Any, size: int) -> tuple[int, int, int]:
    """``(rate, channels, frames)`` of ``soundfile.info`` output, if they are plausible.

    Raises
    ------
    AudioError
        A rate outside ``[MIN_FILE_SAMPLE_RATE, MAX_FILE_SAMPLE_RATE]``, more than
        :data:`MAX_CHANNELS` channels, or more frames than ``size`` bytes can hold.

    Warns
    -----
    AudioWarning
        A WAV or AIFF whose data chunk promises more bytes than the file holds.
    """
    rate, channels, frames = int(info.samplerate), int(info.channels), int(info.frames)
    name = quote_path(path)
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
    return rate, channels, frames


def regular_file_size(path: str | os.PathLike[str]) -> int:
    """The size of ``path`` in bytes, after checking, without opening it, that it is a file.

    ``os.stat`` does not block on a FIFO and follows symbolic links, so a link to
    ``/dev/zero`` is seen for the device it is.
    """
    name = quote_path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"cannot read {name}: file not found") from None
    except OSError as exc:
        reason = one_line(exc.strerror or str(exc)).lower()
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
            f"{quote_path(path)} is cut short: its header promises {promised:.2f} s, the file "
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


def quote_path(path: str | os.PathLike[str]) -> str:
    """The path as the user gave it, in single quotes, with control characters escaped."""
    text = os.fsdecode(path)
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + "'"
