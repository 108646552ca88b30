"""An on-disk cache of spectrograms, so a dataset is analysed once per feature setting.

Each spectrogram kind lives in a folder named by a hash of everything that determines it
(the kind, the complete :class:`~edge_asc.features.FeatureConfig` and the front-end's
version), so a changed setting can never pick up stale features. Inside, each clip is one
``.npy`` file named by a hash of the audio file's path, size and modification time. Files
are written atomically, so an interrupted extraction resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from edge_asc.audio import AudioError, load_audio
from edge_asc.errors import EdgeAscError
from edge_asc.features import FeatureConfig, FeatureStream, NormStats
from edge_asc.files import atomic_output

FRONT_END_VERSION = 1
"""Bump when the spectrogram code changes its output, to invalidate every cache."""


class CacheError(EdgeAscError):
    """Feature extraction failed for a clip; the message is one line naming it."""


def feature_key(kind: str, config: FeatureConfig) -> str:
    """Short hash naming one kind's features under one configuration."""
    blob = json.dumps(
        {"kind": kind, "config": config.to_dict(), "front_end": FRONT_END_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _clip_key(path: Path) -> str:
    stat = path.stat()
    blob = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class FeatureCache:
    """Where the spectrograms of one configuration are kept.

    Parameters
    ----------
    root : Path
        Cache folder (shared between runs; safe to delete).
    config : FeatureConfig
        The settings every cached spectrogram was computed with.
    """

    root: Path
    config: FeatureConfig

    def folder(self, kind: str) -> Path:
        """The folder holding ``kind`` under this configuration."""
        return Path(self.root) / f"{kind}-{feature_key(kind, self.config)}"

    def path(self, kind: str, clip_path: Path) -> Path:
        """Cache file of one clip's ``kind`` spectrogram."""
        return self.folder(kind) / f"{_clip_key(Path(clip_path))}.npy"

    def load(self, kind: str, clip_path: Path) -> np.ndarray:
        """The cached ``(bins, T)`` spectrogram (no pickle on the load path)."""
        return np.load(self.path(kind, clip_path), allow_pickle=False)

    def missing(self, kinds: Sequence[str], clip_paths: Sequence[Path]) -> list[Path]:
        """Clips with at least one of ``kinds`` not cached yet."""
        return [p for p in clip_paths if not all(self.path(k, p).is_file() for k in kinds)]

    def extract(
        self,
        kinds: Sequence[str],
        clip_paths: Sequence[Path],
        workers: int | None = None,
        progress: bool = True,
    ) -> int:
        """Compute and store every missing spectrogram, in parallel over clips.

        Parameters
        ----------
        kinds : sequence of str
            Spectrogram kinds to have cached.
        clip_paths : sequence of Path
            Audio files.
        workers : int, optional
            Processes to use; defaults to the number of CPU cores.
        progress : bool
            Show a progress bar.

        Returns
        -------
        int
            Number of clips computed (the rest were cached already).

        Raises
        ------
        CacheError
            If a clip cannot be read; clips finished before it stay cached.
        """
        todo = self.missing(kinds, clip_paths)
        if not todo:
            return 0
        for kind in kinds:
            self.folder(kind).mkdir(parents=True, exist_ok=True)
            _write_config(self.folder(kind), kind, self.config)
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        jobs = [(str(p), tuple(kinds), self.config.to_dict(), str(self.root)) for p in todo]
        with _progress(progress) as bar:
            task = bar.add_task("spectrograms", total=len(jobs)) if bar else None
            if workers == 1:
                for job in jobs:
                    _extract_one(*job)
                    if bar:
                        bar.advance(task)
            else:
                with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                    futures = [pool.submit(_extract_one, *job) for job in jobs]
                    try:
                        for future in as_completed(futures):
                            future.result()
                            if bar:
                                bar.advance(task)
                    except BaseException:
                        for future in futures:
                            future.cancel()
                        raise
        return len(todo)

    def norm_stats(self, kind: str, clip_paths: Sequence[Path]) -> NormStats:
        """Per-bin statistics of ``kind`` over ``clip_paths`` (the training split only)."""
        return NormStats.fit(self.load(kind, p) for p in clip_paths)


def _write_config(folder: Path, kind: str, config: FeatureConfig) -> None:
    target = folder / "feature_config.json"
    if not target.exists():
        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps({"kind": kind, "config": config.to_dict()}, indent=2))


def _extract_one(path: str, kinds: tuple[str, ...], config: dict, root: str) -> None:
    """Worker: read one clip, compute all ``kinds`` with one shared STFT, store each."""
    cache = FeatureCache(Path(root), FeatureConfig.from_dict(config))
    try:
        signal = load_audio(path, cache.config.sample_rate)
    except AudioError as exc:
        raise CacheError(str(exc)) from None
    specs = FeatureStream(kinds, cache.config).push(signal)
    for kind, spec in specs.items():
        with atomic_output(cache.path(kind, Path(path))) as tmp:
            np.save(tmp, spec, allow_pickle=False)


class _NoBar:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
