"""Index acoustic-scene datasets from their published on-disk layouts.

Why: every public ASC corpus ships its own metadata (DCASE ``meta.txt`` / ``meta.csv``
plus ``evaluation_setup`` fold lists, ESC-50's ``esc50.csv``, LITIS Rouen's split
matrices). Results are only comparable when the *official* folds are used, and a
clip's recording location or device must travel with it so that segments of one
recording never straddle train and test. This module turns each layout into one
small, uniform :class:`DatasetIndex` (clips, sorted labels, official folds) without
touching the audio, and fails with a one-line :class:`DatasetError` that names the
offending file (and line) when the metadata and the files on disk disagree.

Only the standard library is used, so indexing works before any training extra is
installed.

Fold conventions
----------------
* Fold keys are the dataset's own fold numbers (1-based).
* ``split(None)`` and ``split(0)`` mean "train on every clip, test on nothing".
* :data:`EVAL_FOLD` (``-1``) is the development-vs-evaluation split that the DCASE
  readers add when given ``evaluation_root``: train on all development clips, test on
  the separately distributed evaluation set.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import operator
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edge_asc.errors import EdgeAscError

__all__ = [
    "AUDIO_EXTENSIONS",
    "DATASETS",
    "EVAL_FOLD",
    "Clip",
    "DatasetError",
    "DatasetIndex",
    "Split",
    "read_dataset",
]


class DatasetError(EdgeAscError):
    """One-line, user-facing error; names the offending file."""


@dataclass(frozen=True)
class Clip:
    """One audio clip of a dataset.

    Attributes
    ----------
    path : Path
        Absolute path to the audio file.
    label : str
        Class (scene) name.
    device : str or None
        Recording device where the dataset records it (DCASE 2018 1B / TAU 2020:
        ``'a'``, ``'b'``, ``'c'``, ``'s1'`` ...).
    source : str or None
        Recording location / source id where known; clips sharing it come from one
        recording and must stay on the same side of a split.
    """

    path: Path
    label: str
    device: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Split:
    """Indices into :attr:`DatasetIndex.clips` for one train/test split."""

    train: tuple[int, ...]
    test: tuple[int, ...]


@dataclass
class DatasetIndex:
    """Clips, class names and official folds of one dataset.

    Attributes
    ----------
    name : str
        Reader name (one of :data:`DATASETS`).
    root : Path
        Absolute dataset root (for ``csv``: the manifest's folder).
    clips : list of Clip
        Every clip, in metadata order (sorted paths where there is no metadata).
    labels : list of str
        Sorted class names.
    folds : dict of int to Split
        The dataset's official folds (generated, deterministic ones for ``folder``
        and for ``csv`` without a fold column); may include :data:`EVAL_FOLD`.
    """

    name: str
    root: Path
    clips: list[Clip]
    labels: list[str]
    folds: dict[int, Split]

    def split(self, fold: int | None) -> Split:
        """Return the train/test split of ``fold``.

        Parameters
        ----------
        fold : int or None
            A key of :attr:`folds`; ``None`` or ``0`` selects every clip for training
            and none for testing (e.g. to train a model that ships).

        Returns
        -------
        Split
            Indices into :attr:`clips`.

        Raises
        ------
        DatasetError
            If ``fold`` is not one of the dataset's folds; the message lists them.
        """
        if fold is None:
            return Split(train=tuple(range(len(self.clips))), test=())
        key: int | None = None
        if not isinstance(fold, bool):
            try:
                key = operator.index(fold)  # int, numpy integer, ...
            except TypeError:
                key = None
        if key == 0:
            return Split(train=tuple(range(len(self.clips))), test=())
        if key is not None and key in self.folds:
            return self.folds[key]
        available = ", ".join(str(k) for k in sorted(self.folds)) or "none"
        raise DatasetError(
            f"{self.name}: no fold {fold!r} in {self.root}; available folds: {available} "
            "(or None / 0 for all clips)"
        )

    def label_index(self, clip: Clip) -> int:
        """Return the position of ``clip.label`` in :attr:`labels`.

        Parameters
        ----------
        clip : Clip
            A clip of this dataset.

        Returns
        -------
        int
            Class index for a model head ordered like :attr:`labels`.

        Raises
        ------
        DatasetError
            If the label is not one of :attr:`labels`.
        """
        try:
            return self.labels.index(clip.label)
        except ValueError:
            raise DatasetError(
                f"{self.name}: label {clip.label!r} of {clip.path} is not one of this "
                f"dataset's labels ({', '.join(self.labels)})"
            ) from None


EVAL_FOLD = -1
"""Fold key of the development-vs-evaluation split added by ``evaluation_root``."""

DATASETS: tuple[str, ...] = (
    "dcase2016",
    "dcase2017",
    "dcase2018-1a",
    "dcase2018-1b",
    "tau2020",
    "litis",
    "esc50",
    "folder",
    "csv",
)

_ALIASES = {"tau2022": "tau2020"}

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".rf64",
    }
)
"""File extensions (compared case-insensitively) that libsndfile/soundfile reads."""


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _where(path: Path, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _norm_rel(name: str) -> str:
    """Normalize a metadata file reference to a POSIX relative path string."""
    text = name.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return PurePosixPath(text).as_posix() if text else ""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    return path


def _read_text_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of ``path``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({_one_line(str(exc))})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({_one_line(exc.strerror or exc)})") from None
    return [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _read_tab_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Tab-separated rows (DCASE metadata) with their line numbers; blank lines skipped."""
    return [(n, [cell.strip() for cell in line.split("\t")]) for n, line in _read_text_lines(path)]


def _read_csv_rows(path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """Rows of a quoted CSV file with the line number each row ends on."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            rows = []
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((reader.line_num, [cell.strip() for cell in row]))
            return rows
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({_one_line(str(exc))})") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({_one_line(str(exc))})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({_one_line(exc.strerror or exc)})") from None


def _header_columns(
    path: Path, header: list[str], required: Sequence[str], line: int = 1
) -> dict[str, int]:
    columns = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetError(
            f"{_where(path, line)}: header lacks column(s) {', '.join(missing)} "
            f"(found: {', '.join(header)})"
        )
    return columns


def _parse_int(text: str, path: Path, line: int, what: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{_where(path, line)}: {what} {text!r} is not a number") from None
    if value != int(value):
        raise DatasetError(f"{_where(path, line)}: {what} {text!r} is not an integer")
    return int(value)


class _ClipTable:
    """Accumulates clips, refusing duplicates and (optionally) missing audio."""

    def __init__(self, check_audio: bool) -> None:
        self.clips: list[Clip] = []
        self.by_key: dict[str, int] = {}
        self.check_audio = check_audio

    def add(self, key: str, clip: Clip, meta: Path, line: int) -> int:
        if key in self.by_key:
            raise DatasetError(f"{_where(meta, line)}: {key} is listed twice")
        if self.check_audio and not clip.path.is_file():
            raise DatasetError(f"{_where(meta, line)}: audio file {clip.path} does not exist")
        self.by_key[key] = len(self.clips)
        self.clips.append(clip)
        return self.by_key[key]


def _make_index(name: str, root: Path, clips: list[Clip], folds: dict[int, Split]) -> DatasetIndex:
    if not clips:
        raise DatasetError(f"{name}: no clips found in {root}")
    labels = sorted({c.label for c in clips})
    return DatasetIndex(name=name, root=root, clips=clips, labels=labels, folds=folds)


def _subset(index: DatasetIndex, keep: Sequence[bool], why: str) -> DatasetIndex:
    """Keep only the clips flagged in ``keep``, remapping every fold."""
    new_pos: dict[int, int] = {}
    clips: list[Clip] = []
    for i, (clip, k) in enumerate(zip(index.clips, keep, strict=True)):
        if k:
            new_pos[i] = len(clips)
            clips.append(clip)
    if not clips:
        raise DatasetError(f"{index.name}: no clips left in {index.root} after {why}")
    folds = {
        f: Split(
            train=tuple(new_pos[i] for i in s.train if i in new_pos),
            test=tuple(new_pos[i] for i in s.test if i in new_pos),
        )
        for f, s in index.folds.items()
    }
    return _make_index(index.name, index.root, clips, folds)


def _filter_devices(index: DatasetIndex, devices: Iterable[str] | None) -> DatasetIndex:
    if devices is None:
        return index
    wanted = {devices} if isinstance(devices, str) else set(devices)
    wanted = {d.strip().lower() for d in wanted}
    keep = [(c.device or "").lower() in wanted for c in index.clips]
    return _subset(index, keep, f"keeping devices {', '.join(sorted(wanted))}")


def _leave_one_out_folds(fold_of: Sequence[int]) -> dict[int, Split]:
    """Fold k: test = clips whose fold is k, train = all other clips (fold 0 always trains)."""
    everything = range(len(fold_of))
    return {
        k: Split(
            train=tuple(i for i in everything if fold_of[i] != k),
            test=tuple(i for i in everything if fold_of[i] == k),
        )
        for k in sorted({f for f in fold_of if f > 0})
    }


def _stratified_folds(
    labels: Sequence[str], group_keys: Sequence[str], n_folds: int
) -> dict[int, Split]:
    """Deterministic, stratified, group-aware folds without any random generator.

    Within each class, groups (clips sharing a group key: the source id where known,
    otherwise the clip's relative path) are ordered by the SHA-256 of their key and
    dealt out one by one to the fold that holds the fewest clips of that class so far;
    ties go to the next fold after a per-class starting fold (also taken from a hash),
    so remainders do not all pile up in fold 1. Nothing depends on the order in which
    files were found, and adding or removing a file only moves clips of its own class.
    """
    by_label: dict[str, dict[str, list[int]]] = {}
    for i, (label, key) in enumerate(zip(labels, group_keys, strict=True)):
        by_label.setdefault(label, {}).setdefault(key, []).append(i)
    fold_of = [0] * len(labels)
    for label in sorted(by_label):
        groups = by_label[label]
        counts = [0] * n_folds
        start = int(_digest("label:" + label), 16) % n_folds
        for key in sorted(groups, key=lambda g: (_digest(g), g)):
            best = min(range(n_folds), key=lambda f: (counts[f], (f - start) % n_folds))
            counts[best] += len(groups[key])
            for i in groups[key]:
                fold_of[i] = best + 1
    folds = _leave_one_out_folds(fold_of)
    for k in range(1, n_folds + 1):  # a fold with no test clip is still a fold
        folds.setdefault(k, Split(train=tuple(range(len(labels))), test=()))
    return dict(sorted(folds.items()))


# --------------------------------------------------------------------------------------
# DCASE / TUT / TAU acoustic scene datasets
# --------------------------------------------------------------------------------------


def _tut_source(filename: str) -> str:
    """Recording id of a TUT 2016/2017 segment: ``audio/a001_30_60.wav`` -> ``a001``."""
    stem = PurePosixPath(filename).stem
    return stem.split("_")[0] if "_" in stem else stem


def _tau_identifier(filename: str) -> str:
    """Location id of a TUT/TAU 2018+ segment: ``airport-barcelona-0-0-a`` -> ``barcelona-0``."""
    parts = PurePosixPath(filename).stem.split("-")
    return "-".join(parts[1:-2]) if len(parts) >= 4 else PurePosixPath(filename).stem


def _tau_device(filename: str) -> str:
    return PurePosixPath(filename).stem.split("-")[-1]


@dataclass
class _Meta:
    """Parsed DCASE meta file: clip table plus the labels it defines."""

    table: _ClipTable
    labels: set[str]
    path: Path


def _read_tut_meta(meta_path: Path, base: Path, table: _ClipTable, key_prefix: str = "") -> _Meta:
    """TUT 2016/2017 ``meta.txt``: ``file<TAB>scene_label[<TAB>identifier...]``, no header."""
    labels: set[str] = set()
    for line, cells in _read_tab_rows(meta_path):
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise DatasetError(
                f"{_where(meta_path, line)}: expected tab-separated file and scene label "
                f"(at least 2 columns), got {len(cells)}"
            )
        rel = _norm_rel(cells[0])
        third = cells[2] if len(cells) > 2 else ""
        if third and ("/" in third or third.lower().endswith(".wav")):
            source = _tut_source(_norm_rel(third))  # 2016 evaluation: original file name
        else:
            source = third or _tut_source(rel)
        clip = Clip(path=base / rel, label=cells[1], source=source)
        table.add(key_prefix + rel, clip, meta_path, line)
        labels.add(cells[1])
    return _Meta(table=table, labels=labels, path=meta_path)


def _read_tau_meta(meta_path: Path, base: Path, table: _ClipTable, key_prefix: str = "") -> _Meta:
    """TUT/TAU 2018+ ``meta.csv``: tab-separated, header ``filename scene_label identifier
    source_label`` (``identifier`` / ``source_label`` optional; derived from the name)."""
    rows = _read_tab_rows(meta_path)
    if not rows:
        raise DatasetError(f"{meta_path}: empty metadata file")
    head_line, header = rows[0]
    cols = _header_columns(meta_path, header, ("filename", "scene_label"), head_line)
    labels: set[str] = set()
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            raise DatasetError(
                f"{_where(meta_path, line)}: expected {len(header)} tab-separated columns "
                f"({', '.join(header)}), got {len(cells)}"
            )
        rel = _norm_rel(cells[cols["filename"]])
        label = cells[cols["scene_label"]]
        if not rel or not label:
            raise DatasetError(f"{_where(meta_path, line)}: empty filename or scene_label")
        ident = cells[cols["identifier"]] if "identifier" in cols else ""
        device = cells[cols["source_label"]] if "source_label" in cols else ""
        clip = Clip(
            path=base / rel,
            label=label,
            device=device or _tau_device(rel),
            source=ident or _tau_identifier(rel),
        )
        table.add(key_prefix + rel, clip, meta_path, line)
        labels.add(label)
    return _Meta(table=table, labels=labels, path=meta_path)


def _lookup(meta: _Meta, rel: str, where: str) -> int:
    """Index of the clip a fold list refers to (by path, or by unique base name)."""
    index = meta.table.by_key.get(rel)
    if index is not None:
        return index
    base = PurePosixPath(rel).name
    matches = [i for k, i in meta.table.by_key.items() if PurePosixPath(k).name == base]
    if len(matches) == 1:
        return matches[0]
    raise DatasetError(f"{where}: {rel} is not listed in {meta.path}")


def _read_fold_list(path: Path, meta: _Meta, labelled: bool) -> tuple[int, ...]:
    """One ``evaluation_setup`` list (``.txt`` without header or ``.csv`` with one)."""
    rows = _read_tab_rows(path)
    if rows and rows[0][1] and rows[0][1][0].strip().lower() == "filename":
        rows = rows[1:]  # TAU-style header: filename<TAB>scene_label
    need = 2 if labelled else 1
    indices: list[int] = []
    for line, cells in rows:
        where = _where(path, line)
        if len(cells) < need or not cells[0] or (labelled and not cells[1]):
            what = "file and scene label (2 columns)" if labelled else "a file name"
            raise DatasetError(f"{where}: expected tab-separated {what}, got {len(cells)} columns")
        index = _lookup(meta, _norm_rel(cells[0]), where)
        if labelled:
            label = cells[1]
            if label not in meta.labels:
                raise DatasetError(
                    f"{where}: unknown scene label {label!r} (not in {meta.path.name}: "
                    f"{', '.join(sorted(meta.labels))})"
                )
            expected = meta.table.clips[index].label
            if label != expected:
                raise DatasetError(
                    f"{where}: scene label {label!r} of {cells[0]} disagrees with "
                    f"{meta.path.name} ({expected!r})"
                )
        indices.append(index)
    if len(set(indices)) != len(indices):
        raise DatasetError(f"{path}: lists a file more than once")
    return tuple(sorted(indices))


_FOLD_FILE = re.compile(r"^fold(\d+)_train\.(txt|csv)$")


def _read_evaluation_setup(root: Path, meta: _Meta, preferred_ext: str) -> dict[int, Split]:
    """Official folds from ``evaluation_setup/fold{k}_{train,evaluate,test}.{txt,csv}``."""
    setup = root / "evaluation_setup"
    found: dict[int, dict[str, Path]] = {}
    if setup.is_dir():
        for entry in sorted(setup.iterdir()):
            m = _FOLD_FILE.match(entry.name)
            if m and entry.is_file():
                found.setdefault(int(m.group(1)), {})[m.group(2)] = entry
    if not found:
        raise DatasetError(f"{setup / f'fold1_train.{preferred_ext}'}: fold list not found")
    folds: dict[int, Split] = {}
    for k in sorted(found):
        ext = preferred_ext if preferred_ext in found[k] else next(iter(found[k]))
        train_path = found[k][ext]
        evaluate = setup / f"fold{k}_evaluate.{ext}"
        test = setup / f"fold{k}_test.{ext}"
        if evaluate.is_file():
            test_idx = _read_fold_list(evaluate, meta, labelled=True)
        elif test.is_file():
            test_idx = _read_fold_list(test, meta, labelled=False)
        else:
            raise DatasetError(f"{evaluate}: fold list not found")
        train_idx = _read_fold_list(train_path, meta, labelled=True)
        overlap = set(train_idx) & set(test_idx)
        if overlap:
            clip = meta.table.clips[min(overlap)]
            raise DatasetError(f"{train_path}: {clip.path.name} is also in the fold {k} test list")
        folds[k] = Split(train=train_idx, test=test_idx)
    return folds


def _dcase_reader(
    name: str,
    root: Path,
    *,
    style: str,
    evaluation_root: str | Path | None,
    check_audio: bool,
) -> DatasetIndex:
    read_meta = _read_tut_meta if style == "txt" else _read_tau_meta
    meta_name = "meta.txt" if style == "txt" else "meta.csv"
    table = _ClipTable(check_audio)
    meta = read_meta(_require_file(root / meta_name, "metadata file"), root, table)
    folds = _read_evaluation_setup(root, meta, preferred_ext=style)
    if evaluation_root is not None:
        eval_root = _existing_dir(name, evaluation_root, "evaluation root")
        n_dev = len(table.clips)
        eval_meta_path = eval_root / meta_name
        if not eval_meta_path.is_file():
            alt = eval_root / "evaluation_setup" / f"evaluate.{style}"
            if not alt.is_file():
                raise DatasetError(f"{eval_meta_path}: evaluation metadata file not found")
            eval_meta_path = alt
        read_meta(eval_meta_path, eval_root, table, key_prefix="eval:")
        folds[EVAL_FOLD] = Split(
            train=tuple(range(n_dev)), test=tuple(range(n_dev, len(table.clips)))
        )
    return _make_index(name, root, table.clips, folds)


def _read_dcase2016(
    root: Path, *, evaluation_root: str | Path | None = None, check_audio: bool = True
) -> DatasetIndex:
    """TUT Acoustic Scenes 2016 (DCASE 2016 Task 1), development set.

    Layout (dataset README, e.g. github.com/lulu920819/process_audio
    ``data/TUT-acoustic-scenes-2016-development/README.md``; dcase_util
    ``TUTAcousticScenes_2016_DevelopmentSet``)::

        meta.txt                          audio/a001_0_30.wav<TAB>beach[<TAB>...]
        audio/a001_0_30.wav               [recording id]_[start s]_[end s].wav
        evaluation_setup/fold{1-4}_train.txt     file<TAB>label
        evaluation_setup/fold{1-4}_evaluate.txt  file<TAB>label  (= fold test list + labels)
        evaluation_setup/fold{1-4}_test.txt      file

    Folds 1-4: train = ``fold{k}_train``, test = ``fold{k}_evaluate`` (``fold{k}_test`` is
    used only when the evaluate list is absent). ``Clip.source`` is the recording id
    (third meta column where present, else the file-name prefix before ``_``).

    Parameters
    ----------
    root : Path
        The ``TUT-acoustic-scenes-2016-development`` folder.
    evaluation_root : str or Path, optional
        The separately downloaded evaluation set (its ``meta.txt``, or else
        ``evaluation_setup/evaluate.txt``, with labels). Adds fold :data:`EVAL_FOLD`
        (``-1``): train = every development clip, test = every evaluation clip; the
        evaluation clips are appended after the development clips.
    check_audio : bool
        Refuse metadata that points at audio files that do not exist (default).
    """
    return _dcase_reader(
        "dcase2016", root, style="txt", evaluation_root=evaluation_root, check_audio=check_audio
    )


def _read_dcase2017(
    root: Path, *, evaluation_root: str | Path | None = None, check_audio: bool = True
) -> DatasetIndex:
    """TUT Acoustic Scenes 2017 (DCASE 2017 Task 1), development set.

    Same layout as :func:`_read_dcase2016` (10 s segments, 4 folds); ``meta.txt`` has a
    third column with the recording id (``audio/b020_90_100.wav<TAB>beach<TAB>b020``,
    as read by dcase_util's ``TUTAcousticScenes_2017_DevelopmentSet``), stored in
    ``Clip.source``. ``evaluation_root`` works as for 2016 (fold :data:`EVAL_FOLD`).
    """
    return _dcase_reader(
        "dcase2017", root, style="txt", evaluation_root=evaluation_root, check_audio=check_audio
    )


def _read_tau_style(
    name: str,
    root: Path,
    evaluation_root: str | Path | None,
    check_audio: bool,
    devices: Iterable[str] | None,
) -> DatasetIndex:
    index = _dcase_reader(
        name, root, style="csv", evaluation_root=evaluation_root, check_audio=check_audio
    )
    return _filter_devices(index, devices)


def _read_dcase2018_1a(
    root: Path,
    *,
    evaluation_root: str | Path | None = None,
    check_audio: bool = True,
    devices: Iterable[str] | None = None,
) -> DatasetIndex:
    """TUT Urban Acoustic Scenes 2018 (DCASE 2018 Task 1A), development set.

    Layout (qiuqiangkong/dcase2018_task1 ``utils/features.py``; dcase_util)::

        meta.csv     header filename<TAB>scene_label<TAB>identifier<TAB>source_label
                     audio/airport-barcelona-0-0-a.wav<TAB>airport<TAB>barcelona-0<TAB>a
        evaluation_setup/fold1_train.{csv,txt}     filename<TAB>scene_label
        evaluation_setup/fold1_evaluate.{csv,txt}  filename<TAB>scene_label
        evaluation_setup/fold1_test.{csv,txt}      filename

    One official fold (1). The 2018 release shipped the fold lists as header-less
    ``.txt``; later TAU releases use ``.csv`` with a ``filename`` header. Both are
    read (``.csv`` preferred). ``Clip.source`` = ``identifier`` (recording location),
    ``Clip.device`` = ``source_label``.

    Parameters
    ----------
    root : Path
        The ``TUT-urban-acoustic-scenes-2018-development`` folder.
    evaluation_root : str or Path, optional
        An evaluation set with a labelled ``meta.csv``; adds fold :data:`EVAL_FOLD`.
    check_audio : bool
        Refuse metadata that points at missing audio files (default).
    devices : iterable of str, optional
        Keep only clips recorded with these devices (e.g. ``["a"]``); folds are
        restricted accordingly.
    """
    return _read_tau_style("dcase2018-1a", root, evaluation_root, check_audio, devices)


def _read_dcase2018_1b(
    root: Path,
    *,
    evaluation_root: str | Path | None = None,
    check_audio: bool = True,
    devices: Iterable[str] | None = None,
) -> DatasetIndex:
    """TUT Urban Acoustic Scenes 2018 Mobile (DCASE 2018 Task 1B), development set.

    Same layout as :func:`_read_dcase2018_1a`; ``source_label`` is the device
    (``a``, ``b``, ``c``), also the last field of the file name
    (``audio/airport-barcelona-0-0-b.wav``). Options as for 1A.
    """
    return _read_tau_style("dcase2018-1b", root, evaluation_root, check_audio, devices)


def _read_tau2020(
    root: Path,
    *,
    evaluation_root: str | Path | None = None,
    check_audio: bool = True,
    devices: Iterable[str] | None = None,
) -> DatasetIndex:
    """TAU Urban Acoustic Scenes 2020 Mobile (DCASE 2020 Task 1A), development set.

    Layout (soundata ``tau2020uas_mobile``; dcase_util
    ``TAUUrbanAcousticScenes_2020_Mobile_DevelopmentSet``): tab-separated ``meta.csv``
    with header ``filename scene_label identifier source_label`` and
    ``evaluation_setup/fold1_{train,evaluate,test}.csv`` with a header row. Devices
    ``a``, ``b``, ``c``, ``s1`` ... ``s6``; S4-S6 appear only in the test list and some
    clips are in no list at all (they are still in ``clips``, i.e. in ``split(None)``).
    TAU Urban Acoustic Scenes 2022 Mobile has the same layout and is read the same way
    (also as ``"tau2022"``). Options as for :func:`_read_dcase2018_1a`.
    """
    return _read_tau_style("tau2020", root, evaluation_root, check_audio, devices)


# --------------------------------------------------------------------------------------
# LITIS Rouen
# --------------------------------------------------------------------------------------

_LITIS_RELATION = "relation_wav_examples.txt"
_LITIS_LEARN = "fold3026-matrices_Learn.txt"
_LITIS_TEST = "fold3026-matrices_Test.txt"


def _litis_label(filename: str) -> str:
    """Class of a LITIS file: the leading non-digit part of its name (``metro-paris12``)."""
    stem = PurePosixPath(filename).stem
    m = re.match(r"^(\D+)", stem)
    return (m.group(1) if m else stem).rstrip("-_ ")


def _litis_source(filename: str) -> str | None:
    """Recording id where the name is ``<label><recording>-<segment>``; else unknown."""
    m = re.match(r"^(\D+\d+)[-_]\d+$", PurePosixPath(filename).stem)
    return m.group(1) if m else None


def _read_litis_splits(path: Path, valid_ids: set[int]) -> list[list[int]]:
    """Split matrix written by Matlab ``save -ascii``: one split per row (or column)."""
    matrix: list[tuple[int, list[int]]] = []
    for line, text in _read_text_lines(path):
        matrix.append((line, [_parse_int(t, path, line, "example id") for t in text.split()]))
    if not matrix:
        raise DatasetError(f"{path}: empty split file")
    n_rows, n_cols = len(matrix), max(len(r) for _, r in matrix)
    if n_rows > n_cols:  # stored as one split per column: transpose
        if any(len(r) != n_cols for _, r in matrix):
            raise DatasetError(f"{path}: rows have different lengths")
        splits = [[r[c] for _, r in matrix] for c in range(n_cols)]
        lines: list[int | None] = [None] * n_cols
    else:
        splits = [r for _, r in matrix]
        lines = [n for n, _ in matrix]
    padding_ok = 0 not in valid_ids  # Matlab pads ragged rows with 0
    out: list[list[int]] = []
    for k, (ids, line) in enumerate(zip(splits, lines, strict=True), 1):
        kept: list[int] = []
        for ex_id in ids:
            if ex_id in valid_ids:
                kept.append(ex_id)
            elif not (ex_id == 0 and padding_ok):
                raise DatasetError(
                    f"{_where(path, line)}: example id {ex_id} of split {k} is not in "
                    f"{_LITIS_RELATION}"
                )
        out.append(kept)
    return out


def _read_litis(root: Path, *, check_audio: bool = True) -> DatasetIndex:
    """LITIS Rouen audio scene dataset (19 classes, 3026 30-s clips, 20 official splits).

    Layout as distributed by A. Rakotomamonjy (``data_rouen.zip`` plus the split files)
    and read by public code, e.g. ynop/audiomate ``audiomate/corpus/io/rouen.py`` (label
    = leading non-digit part of the file name) and a public Lasagne-era ASC loader
    (``asc.config.settings.DATA_ROOT_LITIS``; repository not identified) that reads
    ``relation_wav_examples.txt`` (``<file name> <example id>`` per line) and
    ``fold3026-matrices_Learn.txt`` / ``fold3026-matrices_Test.txt`` (one split per line,
    example ids as Matlab ``save -ascii`` numbers such as ``1.0000000e+00``)::

        relation_wav_examples.txt
        fold3026-matrices_Learn.txt
        fold3026-matrices_Test.txt
        data_rouen/<label><n>.wav          (or the wav files directly in root)

    Split ``k`` (1-based line ``k``) is fold ``k``: train = Learn line, test = Test line.

    Tolerance (documented assumptions, not confirmed against the original archive):

    * a split matrix stored one split per *column* (more rows than columns) is
      transposed; id ``0`` is skipped as Matlab padding unless it is a real id;
    * audio is looked up in ``data_rouen/`` first, then in ``root``;
    * if neither the relation file nor the split files exist, the wav files are
      indexed from their names alone and ``folds`` is empty (use ``split(None)``);
      the Matlab ``fold3026-matrices_v7.mat`` form is not read (export it as text);
    * ``Clip.source`` is set only for names shaped ``<label><recording>-<segment>``.

    Parameters
    ----------
    root : Path
        Folder holding the split files and ``data_rouen/``.
    check_audio : bool
        Refuse metadata that points at missing audio files (default).
    """
    audio_dir = root / "data_rouen" if (root / "data_rouen").is_dir() else root
    relation = root / _LITIS_RELATION
    learn, test = root / _LITIS_LEARN, root / _LITIS_TEST
    if not relation.is_file() and not learn.is_file() and not test.is_file():
        if (root / "fold3026-matrices_v7.mat").is_file():
            raise DatasetError(
                f"{root / 'fold3026-matrices_v7.mat'}: Matlab split file is not supported; "
                f"provide {_LITIS_LEARN} and {_LITIS_TEST} as text"
            )
        files = sorted(p for p in audio_dir.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
        if not files:
            raise DatasetError(f"{relation}: metadata file not found (and no .wav files)")
        clips = [
            Clip(path=p, label=_litis_label(p.name), source=_litis_source(p.name)) for p in files
        ]
        return _make_index("litis", root, clips, {})
    _require_file(relation, "metadata file")
    _require_file(learn, "split file")
    _require_file(test, "split file")
    entries: dict[int, tuple[int, str]] = {}
    for line, text in _read_text_lines(relation):
        cells = text.split()
        if len(cells) != 2:
            raise DatasetError(
                f"{_where(relation, line)}: expected '<file name> <example id>', "
                f"got {len(cells)} fields"
            )
        ex_id = _parse_int(cells[1], relation, line, "example id")
        if ex_id in entries:
            raise DatasetError(f"{_where(relation, line)}: example id {ex_id} is listed twice")
        entries[ex_id] = (line, cells[0])
    table = _ClipTable(check_audio)
    position: dict[int, int] = {}
    for ex_id in sorted(entries):
        line, name = entries[ex_id]
        rel = _norm_rel(name)
        path = audio_dir / rel
        if not path.is_file() and (root / rel).is_file():
            path = root / rel
        clip = Clip(path=path, label=_litis_label(rel), source=_litis_source(rel))
        position[ex_id] = table.add(rel, clip, relation, line)
    learn_splits = _read_litis_splits(learn, set(entries))
    test_splits = _read_litis_splits(test, set(entries))
    if len(learn_splits) != len(test_splits):
        raise DatasetError(
            f"{test}: {len(test_splits)} splits, but {learn.name} has {len(learn_splits)}"
        )
    folds: dict[int, Split] = {}
    for k, (tr, te) in enumerate(zip(learn_splits, test_splits, strict=True), 1):
        train_idx = tuple(sorted({position[i] for i in tr}))
        test_idx = tuple(sorted({position[i] for i in te}))
        if set(train_idx) & set(test_idx):
            raise DatasetError(f"{test}: split {k} shares examples with {learn.name}")
        folds[k] = Split(train=train_idx, test=test_idx)
    return _make_index("litis", root, table.clips, folds)


# --------------------------------------------------------------------------------------
# ESC-50
# --------------------------------------------------------------------------------------

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _read_esc50(root: Path, *, esc10: bool = False, check_audio: bool = True) -> DatasetIndex:
    """ESC-50 (github.com/karolpiczak/ESC-50): ``meta/esc50.csv`` plus ``audio/``.

    ``esc50.csv`` is comma-separated with header
    ``filename,fold,target,category,esc10,src_file,take``
    (``1-100032-A-0.wav,1,0,dog,True,100032,A``). Label = ``category``;
    ``Clip.source`` = ``src_file`` (the Freesound clip that takes A, B, ... were cut
    from). Folds 1-5: test = clips of fold k, train = the others.

    Parameters
    ----------
    root : Path
        The ``ESC-50-master`` folder.
    esc10 : bool
        Keep only the ESC-10 subset (rows with ``esc10`` = ``True``).
    check_audio : bool
        Refuse metadata that points at missing audio files (default).
    """
    meta = _require_file(root / "meta" / "esc50.csv", "metadata file")
    rows = _read_csv_rows(meta, ",")
    if not rows:
        raise DatasetError(f"{meta}: empty metadata file")
    head_line, header = rows[0]
    required = ["filename", "fold", "category"] + (["esc10"] if esc10 else [])
    cols = _header_columns(meta, header, required, head_line)
    table = _ClipTable(check_audio)
    fold_of: list[int] = []
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            raise DatasetError(
                f"{_where(meta, line)}: expected {len(header)} columns "
                f"({', '.join(header)}), got {len(cells)}"
            )
        if esc10:
            flag = cells[cols["esc10"]].lower()
            if flag not in _TRUE | _FALSE:
                raise DatasetError(f"{_where(meta, line)}: esc10 value {flag!r} is not True/False")
            if flag in _FALSE:
                continue
        fold = _parse_int(cells[cols["fold"]], meta, line, "fold")
        if fold < 1:
            raise DatasetError(f"{_where(meta, line)}: fold {fold} is not a positive integer")
        rel = _norm_rel(cells[cols["filename"]])
        label = cells[cols["category"]]
        if not rel or not label:
            raise DatasetError(f"{_where(meta, line)}: empty filename or category")
        source = cells[cols["src_file"]] if "src_file" in cols else ""
        clip = Clip(path=root / "audio" / rel, label=label, source=source or None)
        table.add(rel, clip, meta, line)
        fold_of.append(fold)
    return _make_index("esc50", root, table.clips, _leave_one_out_folds(fold_of))


# --------------------------------------------------------------------------------------
# Generic layouts: class folders and CSV manifests
# --------------------------------------------------------------------------------------


def _check_n_folds(name: str, n_folds: int) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise DatasetError(f"{name}: n_folds must be an integer >= 2, got {n_folds!r}")
    return n_folds


def _read_folder(root: Path, *, n_folds: int = 5) -> DatasetIndex:
    """Class folders: ``root/<class>/**/*.<audio extension>``.

    Every immediate sub-folder of ``root`` is a class; audio files (extensions in
    :data:`AUDIO_EXTENSIONS`, any case) anywhere below it are its clips. Hidden files
    and folders (leading ``.``) and files directly in ``root`` are ignored; folder
    symlinks are not followed. Clips are ordered by relative path.

    There are no official folds, so ``n_folds`` deterministic stratified folds are
    generated: within each class, files are ordered by the SHA-256 of their relative
    path and dealt to the emptiest fold (see ``_stratified_folds``). The result does not
    depend on file-system order or on any random seed, and adding a file to one class
    leaves every other class's fold assignment unchanged.

    Parameters
    ----------
    root : Path
        Folder of class folders.
    n_folds : int
        Number of folds to generate (>= 2, default 5).
    """
    n_folds = _check_n_folds("folder", n_folds)
    found: list[tuple[str, str, Path]] = []
    for class_dir in sorted(root.iterdir()):
        if not class_dir.is_dir() or class_dir.name.startswith("."):
            continue
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fname in filenames:
                if fname.startswith(".") or Path(fname).suffix.lower() not in AUDIO_EXTENSIONS:
                    continue
                path = Path(dirpath) / fname
                found.append((path.relative_to(root).as_posix(), class_dir.name, path))
    if not found:
        raise DatasetError(f"{root}: no audio files found in class folders (root/<class>/...)")
    found.sort()
    clips = [Clip(path=path, label=label) for _, label, path in found]
    folds = _stratified_folds([c.label for c in clips], [rel for rel, _, _ in found], n_folds)
    return _make_index("folder", root, clips, folds)


def _read_csv(
    root: Path, *, manifest: str = "manifest.csv", n_folds: int = 5, check_audio: bool = True
) -> DatasetIndex:
    """Generic manifest: header ``filename,label[,fold][,device]``, extra columns ignored.

    ``root`` is the manifest file itself or a folder holding it (``manifest`` names the
    file inside a folder, default ``manifest.csv``). ``filename`` is relative to the
    manifest's folder (absolute paths are kept). Comma-separated; a tab-separated file
    is detected from its header. A ``source`` or ``source_id`` column, if present, fills
    ``Clip.source``.

    Folds: with a ``fold`` column holding positive integers, fold k's test set is the
    rows of fold k and its train set every other row; rows with fold ``0`` or an empty
    fold are never tested (always trained on). Without a fold column, or when no row
    has a positive fold, ``n_folds`` folds are generated as for ``folder`` (grouping
    rows that share a source id).

    Parameters
    ----------
    root : Path
        Manifest file, or folder containing ``manifest``.
    manifest : str
        Manifest file name used when ``root`` is a folder.
    n_folds : int
        Folds to generate when the manifest has none (>= 2, default 5).
    check_audio : bool
        Refuse rows whose audio file does not exist (default).
    """
    n_folds = _check_n_folds("csv", n_folds)
    path = root if root.is_file() else _require_file(root / manifest, "manifest")
    base = path.parent
    first = _read_text_lines(path)[:1]
    delimiter = "\t" if first and "\t" in first[0][1] and "," not in first[0][1] else ","
    rows = _read_csv_rows(path, delimiter)
    if not rows:
        raise DatasetError(f"{path}: empty manifest")
    head_line, header = rows[0]
    cols = _header_columns(path, header, ("filename", "label"), head_line)
    source_col = cols.get("source", cols.get("source_id"))
    table = _ClipTable(check_audio)
    fold_of: list[int] = []
    keys: list[str] = []
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            raise DatasetError(
                f"{_where(path, line)}: expected {len(header)} columns "
                f"({', '.join(header)}), got {len(cells)}"
            )
        rel, label = cells[cols["filename"]], cells[cols["label"]]
        if not rel or not label:
            raise DatasetError(f"{_where(path, line)}: empty filename or label")
        fold = 0
        if "fold" in cols and cells[cols["fold"]]:
            fold = _parse_int(cells[cols["fold"]], path, line, "fold")
            if fold < 0:
                raise DatasetError(f"{_where(path, line)}: fold {fold} is negative")
        device = cells[cols["device"]] if "device" in cols else ""
        source = cells[source_col] if source_col is not None else ""
        rel_norm = rel.replace("\\", "/")
        clip_path = Path(rel_norm) if os.path.isabs(rel_norm) else base / _norm_rel(rel_norm)
        clip = Clip(path=clip_path, label=label, device=device or None, source=source or None)
        table.add(_norm_rel(rel_norm), clip, path, line)
        fold_of.append(fold)
        keys.append(source or _norm_rel(rel_norm))
    if any(f > 0 for f in fold_of):
        folds = _leave_one_out_folds(fold_of)
    else:
        folds = _stratified_folds([c.label for c in table.clips], keys, n_folds)
    return _make_index("csv", base, table.clips, folds)


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

_READERS: dict[str, Callable[..., DatasetIndex]] = {
    "dcase2016": _read_dcase2016,
    "dcase2017": _read_dcase2017,
    "dcase2018-1a": _read_dcase2018_1a,
    "dcase2018-1b": _read_dcase2018_1b,
    "tau2020": _read_tau2020,
    "litis": _read_litis,
    "esc50": _read_esc50,
    "folder": _read_folder,
    "csv": _read_csv,
}


def _existing_dir(name: str, root: str | Path, what: str = "dataset root") -> Path:
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.exists():
        raise DatasetError(f"{name}: {what} {path} does not exist")
    if not path.is_dir():
        raise DatasetError(f"{name}: {what} {path} is not a folder")
    return path


def read_dataset(name: str, root: str | Path, **options: object) -> DatasetIndex:
    """Index a dataset from its published on-disk layout.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (case-insensitive; ``_`` may replace ``-``;
        ``"tau2022"`` is read as ``"tau2020"``).
    root : str or Path
        The dataset's top folder (for ``csv``: the manifest file or its folder).
    **options
        Reader options: ``evaluation_root`` (DCASE readers), ``devices`` (2018 /
        TAU 2020), ``esc10`` (ESC-50), ``n_folds`` (folder / csv), ``manifest`` (csv),
        ``check_audio`` (all but folder). See each reader's docstring.

    Returns
    -------
    DatasetIndex
        Clips (absolute paths), sorted labels and the official folds.

    Raises
    ------
    DatasetError
        Unknown name or option, missing root or metadata file, malformed metadata line,
        unknown label in a fold list, or metadata pointing at a missing audio file.
    """
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    reader = _READERS.get(key)
    if reader is None:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    accepted = [p for p in inspect.signature(reader).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(
            f"{key}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if key == "csv" and path.is_file():
        return reader(path, **options)
    return reader(_existing_dir(key, root), **options)
