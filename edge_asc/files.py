"""Writing output files so that an interrupted run never leaves a half-written one behind.

Feature caches, trained models and exported bundles are written through
:func:`atomic_output`: the data goes to a temporary file beside the target and is renamed onto
it only once writing has finished. A crash, an exception or Ctrl-C part-way leaves either the
previous file or no file, never a truncated one that a later run would trust.

An exception deletes the temporary file on the way out (with
:func:`edge_asc.signals.graceful_signals`, SIGTERM and SIGHUP become one too). SIGKILL or a power
cut cannot be caught, so the temporary name carries the writer's process id and the next
:func:`atomic_output` of the same target deletes the temporary files of writers that are no
longer running: a killed run costs disk space only until the same output is written again.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_CREATE_ATTEMPTS = 100

LEGACY_STALE_SECONDS = 3600.0
"""Age after which a temporary file without a process id (older edge-asc) counts as stale."""


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a file under a temporary name and move it onto ``path`` when done.

    The temporary file sits in the same directory as ``path`` (so the final ``os.replace``
    is an atomic rename on the same filesystem) and ends with the same suffix, because some
    writers choose the format or append an extension from it: ``models/x.npy`` is written as
    ``models/.x.npy.tmp-<pid>-1a2b3c4d.npy``. It exists (empty) when the block starts;
    whatever it holds when the block ends becomes ``path``. A writer may put helper files
    beside it whose names start with the temporary file's name; they are treated alike when
    stale.

    Before creating it, leftovers of earlier writers of the same ``path`` are deleted: files
    named ``.<name>.tmp-<pid>-<hex>...`` whose process is no longer running on this machine
    (a writer killed by SIGKILL), and ``.<name>.tmp-<hex><suffix>`` files of older versions
    once they are :data:`LEGACY_STALE_SECONDS` old.

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

    remove_stale_temps(target)
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
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        candidate = target.with_name(f".{target.name}.tmp-{token}{target.suffix}")
        try:
            fd = os.open(candidate, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"cannot create a temporary file beside '{target}'")


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that dead writers of ``path`` left beside it.

    Parameters
    ----------
    path : str or os.PathLike
        The target file (it need not exist).

    Returns
    -------
    list of pathlib.Path
        The files deleted. Files of writers still running (this process included), files
        that vanish meanwhile, and files that cannot be deleted are left alone.
    """
    target = Path(path)
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.tmp-(?:(?P<pid>\d+)-[0-9a-f]{{8}}.*"
        rf"|[0-9a-f]{{8}}{re.escape(target.suffix)})"
    )
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            pid = match.group("pid")
            if pid is None:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_STALE_SECONDS
            else:
                stale = not _process_running(int(pid))
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _process_running(pid: int) -> bool:
    """Whether a process with this id exists on this machine (ours or another user's)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate it on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just is not ours
    except OSError:
        return True  # cannot tell: keep the file
    return True
