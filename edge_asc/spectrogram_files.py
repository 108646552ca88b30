"""Writing the spectrograms of an audio file of any length to .npy / .npz in bounded memory.

``edge-asc features`` used to read the whole file, compute each spectrogram in one go and save
the arrays: an hour of audio took more than 8 GB for one kind. Here the file is streamed
block by block through :class:`~edge_asc.features.FeatureStream` (which gives the same frames
at any block size) and each block's frames are appended to the output as they come, so memory
depends on the block size, not on the file's length; the disk holds the result.

Appending frames is possible because the arrays are stored in Fortran (column-major) order:
frame ``t`` of a ``(n_bins, T)`` array is then one contiguous run of ``n_bins`` values, after
frame ``t - 1``. The ``.npy`` header, written with room to spare, is rewritten with the real
``T`` at the end. ``numpy.load`` reads such files transparently (same shape, same values; the
array it returns is F-contiguous). An ``.npz`` is built from one such ``.npy`` per kind, each
written beside the output first and then stored uncompressed in the zip, as ``numpy.savez``
does.

Everything is written through :func:`edge_asc.files.atomic_output`, so an error, Ctrl-C or a
signal turned into an exception (:func:`edge_asc.signals.graceful_signals`) leaves no output
and no temporary file; the names of the per-kind parts start with the temporary file's name,
so the parts of a run killed outright are removed with it by the next run of the same output.

Drawing needs every frame at once, so :func:`write_spectrograms` keeps the arrays only when
asked (``keep=True``, for ``--png``), and then refuses audio longer than
:data:`KEEP_MAX_SECONDS`.
"""

from __future__ import annotations

import itertools
import os
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edge_asc.audio import audio_info, iter_audio_blocks
from edge_asc.blocks import reblock
from edge_asc.errors import EdgeAscError
from edge_asc.features import FeatureConfig, FeatureStream, parse_kinds
from edge_asc.files import atomic_output

DEFAULT_BLOCK = 65536
"""Samples (at the analysis rate) pushed through the front-end at a time when none is given."""

KEEP_MAX_SECONDS = 60.0
"""Longest audio whose spectrograms are kept in memory (``keep=True``, for drawing a PNG).

Drawing is what costs: ``edge-asc features --kind all --png`` peaked at 390 MB for 60 s of
audio, 560 MB for 120 s and 950 MB for 300 s (matplotlib renders every frame).
"""

_NPY_HEADER_BYTES = 128
_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_DTYPE = np.dtype("<f4")


class SpectrogramFileError(EdgeAscError):
    """A request :func:`write_spectrograms` cannot fulfil; ``str()`` is one line."""


@dataclass(frozen=True)
class SpectrogramSummary:
    """What was computed for one kind: its shape, the time it covers and its value range.

    Attributes
    ----------
    kind : str
        Spectrogram name (``"logmel"``, ...).
    bins : int
        Rows (frequency bins or coefficients).
    frames : int
        Columns (time frames).
    seconds : float
        ``frames * hop_length / sample_rate``.
    low, high : float
        Smallest and largest value (0.0 and 0.0 when there are no frames).
    """

    kind: str
    bins: int
    frames: int
    seconds: float
    low: float
    high: float

    def describe(self) -> str:
        """One line, as ``edge-asc features`` prints it."""
        return (
            f"{self.kind:7s} {self.bins}x{self.frames} float32  "
            f"({self.seconds:.2f} s of frames, {self.low:.1f} .. {self.high:.1f})"
        )


@dataclass(frozen=True)
class SpectrogramResult:
    """The outcome of :func:`write_spectrograms`.

    Attributes
    ----------
    summaries : tuple of SpectrogramSummary
        One per kind, in request order.
    arrays : dict of str to numpy.ndarray or None
        The ``(n_bins, T)`` float32 arrays when ``keep=True`` was asked, else ``None``.
    """

    summaries: tuple[SpectrogramSummary, ...]
    arrays: dict[str, np.ndarray] | None


def write_spectrograms(
    audio_path: str | os.PathLike[str],
    kinds: str | Sequence[str],
    config: FeatureConfig,
    out: str | os.PathLike[str] | None = None,
    block: int | None = None,
    keep: bool = False,
) -> SpectrogramResult:
    """Stream an audio file through the front-end, writing each kind's frames as they come.

    Parameters
    ----------
    audio_path : str or os.PathLike
        Any audio file :func:`edge_asc.audio.iter_audio_blocks` reads (downmixed, resampled
        to ``config.sample_rate``).
    kinds : str or sequence of str
        Spectrograms to compute (names, a comma list or ``"all"``).
    config : FeatureConfig
        Front-end settings.
    out : str or os.PathLike, optional
        ``.npy`` (exactly one kind) or ``.npz`` (one ``<kind>.npy`` member each) to write;
        ``None`` computes the summaries only. Arrays are float32 ``(n_bins, T)`` in Fortran
        order (see the module notes).
    block : int, optional
        Push exactly this many samples at a time (the last push may be shorter); the frames
        do not depend on it. :data:`DEFAULT_BLOCK` when omitted.
    keep : bool, optional
        Also return the arrays in memory (to draw them). The audio must then be at most
        :data:`KEEP_MAX_SECONDS` long.

    Returns
    -------
    SpectrogramResult
        The per-kind summaries, and the arrays when ``keep`` is set.

    Raises
    ------
    SpectrogramFileError
        If ``out`` has another suffix, names an ``.npy`` for several kinds, ``block`` is not
        positive, or ``keep`` is set for audio longer than :data:`KEEP_MAX_SECONDS`.
    AudioError
        If the audio cannot be used (see :func:`edge_asc.audio.iter_audio_blocks`).
    OSError
        If the output cannot be written (missing folder, disk full, ...). Nothing is left
        behind in every case.
    """
    kinds = parse_kinds(kinds)
    step = DEFAULT_BLOCK if block is None else block
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise SpectrogramFileError(f"block must be a positive number of samples, got {block!r}")
    target = None if out is None else Path(out)
    if target is not None and target.suffix not in (".npy", ".npz"):
        raise SpectrogramFileError(f"output must end in .npy or .npz, got {target.name!r}")
    if target is not None and target.suffix == ".npy" and len(kinds) > 1:
        raise SpectrogramFileError("several spectrograms need an .npz output (one array per kind)")
    max_samples = None
    if keep:
        seconds = audio_info(audio_path).duration_s
        if seconds > KEEP_MAX_SECONDS:
            raise SpectrogramFileError(_too_long_to_keep(audio_path, seconds))
        max_samples = int(KEEP_MAX_SECONDS * config.sample_rate) + 1

    # Blocks of exactly `step` samples, and one empty push at the end so that even an empty
    # file goes through the stream once.
    blocks = itertools.chain(
        reblock(iter_audio_blocks(audio_path, config.sample_rate), step),
        [np.zeros(0, dtype=np.float32)],
    )
    stream = FeatureStream(kinds, config)
    stats = {kind: _Stats() for kind in kinds}
    kept: dict[str, list[np.ndarray]] | None = {k: [] for k in kinds} if keep else None

    with ExitStack() as stack:
        sinks: dict[str, _NpySink] = {}
        if target is not None:
            temp = stack.enter_context(atomic_output(target))
            if target.suffix == ".npy":
                sinks[kinds[0]] = stack.enter_context(_NpySink.create(temp))
            else:
                for kind in kinds:
                    part = temp.with_name(f"{temp.name}.{kind}.npy")
                    sinks[kind] = stack.enter_context(_NpySink.create(part, remove=True))
        for samples in blocks:
            if max_samples is not None and stream.samples_in + samples.size > max_samples:
                seconds = (stream.samples_in + samples.size) / config.sample_rate
                raise SpectrogramFileError(_too_long_to_keep(audio_path, seconds))
            for kind, frames in stream.push(samples).items():
                stats[kind].add(frames)
                if kind in sinks:
                    sinks[kind].append(frames)
                if kept is not None:
                    kept[kind].append(frames)
        for sink in sinks.values():
            sink.finish()
        if target is not None and target.suffix == ".npz":
            with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for kind in kinds:
                    archive.write(sinks[kind].path, arcname=f"{kind}.npy")

    summaries = tuple(
        stats[kind].summary(kind, config.hop_length / config.sample_rate) for kind in kinds
    )
    arrays = None
    if kept is not None:
        arrays = {
            kind: np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
            for kind, parts in kept.items()
        }
    return SpectrogramResult(summaries=summaries, arrays=arrays)


def _too_long_to_keep(path: str | os.PathLike[str], seconds: float) -> str:
    return (
        f"'{os.fsdecode(path)}' is {seconds:.0f} s long; drawing holds every frame in memory "
        f"and is limited to {KEEP_MAX_SECONDS:.0f} s (write --out instead, or cut the file)"
    )


class _Stats:
    """Running shape and value range of one kind's frames."""

    def __init__(self) -> None:
        self.bins = 0
        self.frames = 0
        self.low = np.inf
        self.high = -np.inf

    def add(self, frames: np.ndarray) -> None:
        self.bins = frames.shape[0]
        self.frames += frames.shape[1]
        if frames.size:
            self.low = min(self.low, float(frames.min()))
            self.high = max(self.high, float(frames.max()))

    def summary(self, kind: str, seconds_per_frame: float) -> SpectrogramSummary:
        low, high = (self.low, self.high) if self.frames else (0.0, 0.0)
        return SpectrogramSummary(
            kind=kind,
            bins=self.bins,
            frames=self.frames,
            seconds=self.frames * seconds_per_frame,
            low=low,
            high=high,
        )


class _NpySink:
    """An ``.npy`` file of float32 ``(n_bins, T)`` in Fortran order, grown frame by frame."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self._handle = handle
        self._bins: int | None = None
        self._frames = 0
        self._write_header(0, 0)

    @classmethod
    @contextmanager
    def create(cls, path: Path, remove: bool = False) -> Iterator[_NpySink]:
        """Open ``path`` for writing; closed at the end, and deleted too when ``remove``."""
        try:
            with open(path, "wb") as handle:
                yield cls(path, handle)
        finally:
            if remove:
                with suppress(FileNotFoundError):
                    os.unlink(path)

    def append(self, frames: np.ndarray) -> None:
        if self._bins is None:
            self._bins = frames.shape[0]
        elif frames.shape[0] != self._bins:
            raise ValueError(f"expected {self._bins} bins, got {frames.shape[0]}")
        if frames.shape[1]:
            # Column-major bytes of (n_bins, k): the rows of its transpose, one frame each.
            self._handle.write(np.ascontiguousarray(frames.T, dtype=_DTYPE).tobytes())
            self._frames += frames.shape[1]

    def finish(self) -> None:
        self._handle.seek(0)
        self._write_header(self._bins or 0, self._frames)
        self._handle.flush()

    def _write_header(self, bins: int, frames: int) -> None:
        text = repr({"descr": _DTYPE.str, "fortran_order": True, "shape": (bins, frames)})
        room = _NPY_HEADER_BYTES - len(_NPY_MAGIC) - 2
        body = text.encode("latin1").ljust(room - 1) + b"\n"
        if len(body) != room:
            raise ValueError(f"npy header for shape {(bins, frames)} does not fit")
        self._handle.write(_NPY_MAGIC + len(body).to_bytes(2, "little") + body)
