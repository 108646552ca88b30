"""The zip container of a bundle: reading it without trusting it, and writing it atomically.

A bundle may come from anywhere, so nothing in the file is believed before it is checked:
only a regular file is opened (a FIFO would block forever, ``/dev/zero`` never ends), the
central directory is sized from the end record before :mod:`zipfile` parses it, member names
must stay inside the archive, and every member is inflated as a stream, counting the bytes
that actually come out against a cap per member and in total, whatever the headers declare.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from edge_asc.bundle.common import CONTROL, MANIFEST_NAME, BundleError, names
from edge_asc.files import atomic_output

MAX_MEMBERS = 64
"""Most entries in a bundle's zip archive (five spectrograms need at most twelve)."""

MAX_MANIFEST_BYTES = 8 * 1024**2
"""Largest manifest, uncompressed."""

MAX_MEMBER_BYTES = 64 * 1024**2
"""Largest uncompressed size of one member, declared or actually inflated."""

MAX_TOTAL_BYTES = 256 * 1024**2
"""Largest uncompressed size of all members together, declared or actually inflated."""

MAX_BUNDLE_BYTES = MAX_TOTAL_BYTES + 1024**2
"""Largest bundle file (members stored uncompressed, plus headers)."""

_CHUNK = 1024**2
_CENTRAL_DIRECTORY_BYTES = 1024**2
_END_RECORD = struct.Struct("<4s4H2LH")
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_DRIVE = re.compile(r"[A-Za-z]:")
READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)
"""What :mod:`zipfile` and the file system raise for a file that is not a readable archive
(each becomes one line: :func:`unreadable`)."""


def open_regular_file(path: Path, where: str) -> BinaryIO:
    """Open ``path`` for reading if (after following links) it is a regular, bounded file.

    The file is opened non-blocking, so a FIFO returns at once instead of waiting for a
    writer, and then refused by its type like any device, socket or directory.

    Raises
    ------
    BundleError
        If it does not exist, is not a regular file, is larger than :data:`MAX_BUNDLE_BYTES`
        or cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise BundleError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise BundleError(f"{where} is a directory, not a bundle file") from None
    except OSError as exc:
        raise BundleError(f"{where} cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BundleError(f"{where} is a directory, not a bundle file")
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{where} is not a regular file (a device, FIFO or socket)")
        if info.st_size > MAX_BUNDLE_BYTES:
            raise BundleError(
                f"{where} is refused: {info.st_size} bytes (limit {MAX_BUNDLE_BYTES})"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class ArchiveReader:
    """The entries of an opened bundle, checked, and a capped reader for each.

    Use as a context manager. Opening checks the end record (entry count, directory size),
    then every entry: a safe relative name, no duplicates, a supported compression method
    and declared sizes within the limits.

    Parameters
    ----------
    path : pathlib.Path
        The bundle file.
    where : str
        Names the bundle at the start of every message.
    """

    def __init__(self, path: Path, where: str) -> None:
        self.where = where
        self._file = open_regular_file(path, where)
        try:
            _check_end_record(self._file, where)
            self._zip = zipfile.ZipFile(self._file)
            self.names = self._check_entries()
        except READ_ERRORS as exc:
            self._file.close()
            raise unreadable(where, exc) from exc
        except BaseException:
            self._file.close()
            raise
        self._left = MAX_TOTAL_BYTES

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._zip.close()
        self._file.close()

    def _check_entries(self) -> list[str]:
        where = self.where
        seen: list[str] = []
        total = 0
        for info in self._zip.infolist():
            name = info.filename
            if unsafe_name(name):
                raise BundleError(
                    f"{where} is unsafe: member {name!r} escapes the bundle (absolute path, "
                    "'..', backslash or drive letter)"
                )
            if name in seen:
                raise BundleError(f"{where} has been tampered with: member {name!r} appears twice")
            seen.append(name)
            if info.compress_type not in _COMPRESSIONS:
                raise BundleError(
                    f"{where} is refused: member {name!r} uses compression method "
                    f"{info.compress_type} (only stored and deflate)"
                )
            limit = MAX_MANIFEST_BYTES if name == MANIFEST_NAME else MAX_MEMBER_BYTES
            if info.file_size > limit:
                raise BundleError(
                    f"{where} is refused: member {name!r} declares {info.file_size} bytes "
                    f"uncompressed (limit {limit})"
                )
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise BundleError(
                f"{where} is refused: its members declare {total} bytes uncompressed "
                f"(limit {MAX_TOTAL_BYTES})"
            )
        return seen

    def check_members(self, listed: list[str], allowed: tuple[str, ...]) -> None:
        """The archive must hold exactly ``listed`` and, optionally, the ``allowed`` extras."""
        missing = [name for name in listed if name not in self.names]
        if missing:
            raise BundleError(
                f"{self.where} is incomplete: listed file(s) {names(missing)} are not in the "
                "archive"
            )
        extra = sorted(set(self.names) - set(listed) - set(allowed))
        if extra:
            raise BundleError(
                f"{self.where} has been tampered with: unlisted member(s) {names(extra)}"
            )

    def read(self, name: str) -> bytes:
        """Inflate one member in full (so its CRC is checked), counting what comes out.

        Raises
        ------
        BundleError
            If it inflates past its declared size, its cap or what is left of the total,
            or cannot be read (CRC error, corrupt stream).
        """
        data = bytearray()
        for chunk in self._inflate(name):
            data += chunk
        return bytes(data)

    def digest(self, name: str) -> tuple[str, int]:
        """SHA-256 (hex) and size of one member, inflated as a stream and not kept.

        The same checks and caps as :meth:`read`; what loading uses to verify the models
        that it then leaves on disk until they are opened.
        """
        hasher = hashlib.sha256()
        size = 0
        for chunk in self._inflate(name):
            hasher.update(chunk)
            size += len(chunk)
        return hasher.hexdigest(), size

    def _inflate(self, name: str) -> Iterator[bytes]:
        where = self.where
        limit = MAX_MANIFEST_BYTES if name == MANIFEST_NAME else MAX_MEMBER_BYTES
        done = 0
        try:
            info = self._zip.getinfo(name)
            cap = min(info.file_size, limit, self._left)
            with self._zip.open(info) as stream:
                while chunk := stream.read(min(_CHUNK, cap + 1 - done)):
                    done += len(chunk)
                    if done > cap:
                        raise BundleError(
                            f"{where} is refused: member {name!r} inflates past "
                            f"{cap} bytes (declared {info.file_size}, limit {limit}, "
                            f"{self._left} left of the total)"
                        )
                    yield chunk
        except BundleError:
            raise
        except READ_ERRORS as exc:
            raise BundleError(
                f"{where} is corrupt: member {name!r} cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        self._left -= done


def unreadable(where: str, exc: BaseException) -> BundleError:
    """The one-line error for an archive that :mod:`zipfile` or the file system refused."""
    if isinstance(exc, zipfile.BadZipFile):
        return BundleError(f"{where} is not a valid bundle (not a zip file, or truncated: {exc})")
    return BundleError(f"{where} cannot be read ({type(exc).__name__}: {exc})")


def _check_end_record(file: BinaryIO, where: str) -> None:
    """Refuse an archive whose central directory is too large before zipfile parses it."""
    size = file.seek(0, os.SEEK_END)
    tail_start = max(0, size - (_END_RECORD.size + 0xFFFF))
    file.seek(tail_start)
    tail = file.read()
    file.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END_RECORD.size:
        return  # not a zip: zipfile says so in its own words
    fields = _END_RECORD.unpack_from(tail, at)
    entries, directory_size = fields[4], fields[5]
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        raise BundleError(f"{where} is refused: ZIP64 archives are not bundles")
    if entries > MAX_MEMBERS or directory_size > _CENTRAL_DIRECTORY_BYTES:
        raise BundleError(
            f"{where} is refused: {entries} entries in a {directory_size}-byte directory "
            f"(limit {MAX_MEMBERS} entries)"
        )


def unsafe_name(name: str) -> bool:
    """Whether a member name could point outside the bundle or is not a plain relative path."""
    if not name or name.startswith("/") or "\\" in name or _DRIVE.match(name):
        return True
    if CONTROL.search(name):
        return True
    parts = name.rstrip("/").split("/")
    return any(part in ("", ".", "..") for part in parts)


def write_archive(target: Path, members: list[tuple[str, bytes]]) -> None:
    """Write ``members`` (name, bytes), in order, as a deflated zip, atomically.

    Equal inputs give byte-identical files (fixed dates and modes).

    Raises
    ------
    OSError
        If the file cannot be written; nothing is left behind.
    """
    with (
        atomic_output(target) as temp,
        zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for name, blob in members:
            archive.writestr(_zip_info(name), blob)


def _zip_info(name: str) -> zipfile.ZipInfo:
    """A member header with a fixed date and mode, so equal inputs give equal bundles."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info
