"""Writing output files so that an interrupted run never leaves a half-written one behind.

Feature caches, trained models and exported bundles are written through
:func:`atomic_output`: the data goes to a temporary file beside the target and is renamed onto
it only once writing has finished. A crash, an exception or Ctrl-C part-way leaves either the
previous file or no file, never a truncated one that a later run would trust.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_CREATE_ATTEMPTS = 100


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a file under a temporary name and move it onto ``path`` when done.

    The temporary file sits in the same directory as ``path`` (so the final ``os.replace``
    is an atomic rename on the same filesystem) and ends with the same suffix, because some
    writers choose the format or append an extension from it: ``models/x.npy`` is written as
    ``models/.x.npy.tmp-1a2b3c4d.npy``. It exists (empty) when the block starts; whatever it
    holds when the block ends becomes ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace. Its directory must already exist.

    Yields
    ------
    pathlib.Path
        The temporary path to write to.

    Raises
    ------
    FileNotFoundError
        Before yielding, if the directory of ``path`` does not exist.
    NotADirectoryError
        Before yielding, if the parent of ``path`` is not a directory.
    IsADirectoryError
        Before yielding, if ``path`` itself is an existing directory.

    Notes
    -----
    On normal exit the temporary file replaces ``path`` (keeping the permission bits of the
    file it replaces; a new file gets the usual umask-based mode). If the block raises
    anything, ``KeyboardInterrupt`` included, the temporary file is deleted, ``path`` is left
    exactly as it was, and the exception propagates. The data is not ``fsync``-ed: the
    guarantee is against interrupted writers, not against power loss.
    """
    target = Path(path)
    parent = target.parent
    if not parent.exists():
        raise FileNotFoundError(f"cannot write '{target}': directory '{parent}' does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write '{target}': '{parent}' is not a directory")
    if target.is_dir():
        raise IsADirectoryError(f"cannot write '{target}': it is an existing directory")

    temp = _create_temp_beside(target)
    try:
        yield temp
        with suppress(FileNotFoundError):
            os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _create_temp_beside(target: Path) -> Path:
    """Create a new empty file with a unique hidden name next to ``target``.

    ``os.open`` with mode 0o666 lets the umask decide the permissions, as for any new file
    (``tempfile.mkstemp`` would make every output owner-only, 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_CREATE_ATTEMPTS):
        candidate = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}{target.suffix}")
        try:
            fd = os.open(candidate, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"cannot create a temporary file beside '{target}'")
