"""Clip-level evaluation and late fusion of spectrogram models, as in Ngo et al. (2022).

The models classify 128x128 patches, but the paper scores whole clips: patch posteriors are
averaged into one clip posterior (eq. 18), clip posteriors of models trained on different
spectrograms are combined by late fusion (Mean eq. 20, Prod eq. 23, Max eq. 24), and the
predicted label is the argmax (eqs. 19, 21). Results are reported per DCASE 2018 Task 1B
device group (A, B&C) in tables shaped like the paper's Tables 5-7. Everything here is plain
numpy (plus matplotlib for the confusion plot) so it runs without TensorFlow, on saved
posteriors; every file is written atomically so an interrupted run leaves no half file.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_asc.files import atomic_output
from edge_asc.fusion import FUSION_RULES, fuse

__all__ = [
    "FUSION_RULES",
    "KIND_NAMES",
    "PAPER_COMBINATIONS",
    "ClipMetrics",
    "clip_metrics",
    "clip_posteriors",
    "format_paper_table",
    "fuse",
    "fusion_combinations",
    "fusion_report",
    "metrics_table",
    "plot_confusion",
    "read_confusion_csv",
    "write_confusion_csv",
]


KIND_NAMES: dict[str, str] = {
    "stft": "STFT",
    "logmel": "log-Mel",
    "mfcc": "MFCC",
    "cqt": "CQT",
    "gam": "GAM",
}
"""Our spectrogram names (``edge_asc.features.KINDS``) and the paper's names for them."""

PAPER_COMBINATIONS: tuple[tuple[str, ...], ...] = (
    ("cqt", "stft"),
    ("cqt", "gam"),
    ("cqt", "logmel"),
    ("cqt", "mfcc"),
    ("cqt", "gam", "logmel"),
    ("cqt", "gam", "mfcc"),
    ("cqt", "gam", "stft", "mfcc"),
    ("cqt", "gam", "stft", "logmel"),
    ("cqt", "gam", "stft", "mfcc", "logmel"),
)
"""Table 2 of the paper ("Spectrogram combinations proposed"), in its order and spelling.

Verbatim: CQT+STFT, CQT+GAM, CQT+log-Mel, CQT+MFCC; CQT+GAM+log-Mel, CQT+GAM+MFCC;
CQT+GAM+STFT+MFCC, CQT+GAM+STFT+log-Mel; CQT+GAM+STFT+MFCC+log-Mel (GAM = Gammatone).
"""

LOG_LOSS_EPS = 1e-15
"""The probability of the true class is clipped to ``[eps, 1]`` before the log in log loss."""

_DEVICE_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("A", frozenset({"a"})),
    ("B&C", frozenset({"b", "c"})),
)

# Paper spellings accepted in table row names (lower case) besides our own kind names.
_ROW_NAME_ALIASES = frozenset(
    {*KIND_NAMES, *(name.lower() for name in KIND_NAMES.values()), "logmel", "gammatone"}
)
_GROUP_TITLES = {
    1: "Single spectrogram",
    2: "Two spectrograms",
    3: "Three spectrograms",
    4: "Four spectrograms",
    5: "All five spectrograms",
}


# --------------------------------------------------------------------------------------------
# Patch -> clip, and late fusion
# --------------------------------------------------------------------------------------------


def clip_posteriors(patch_probs: np.ndarray, clip_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average patch posteriors into one posterior per clip (eq. 18).

    Parameters
    ----------
    patch_probs : numpy.ndarray
        ``(n_patches, C)`` posterior of every patch.
    clip_ids : numpy.ndarray
        ``(n_patches,)`` clip identifier (string or integer) of every patch; the patches of a
        clip need not be contiguous.

    Returns
    -------
    ids : numpy.ndarray
        The distinct clip ids, in the order of their first patch.
    probs : numpy.ndarray
        ``(n_clips, C)`` float64 mean of each clip's patch posteriors, row ``i`` for ``ids[i]``.

    Raises
    ------
    ValueError
        If ``patch_probs`` is not 2-D, is empty, or its length differs from ``clip_ids``.
    """
    probs = np.asarray(patch_probs, dtype=np.float64)
    ids = np.asarray(clip_ids)
    if probs.ndim != 2:
        raise ValueError(f"patch_probs must be (n_patches, C), got shape {probs.shape}")
    if ids.ndim != 1 or ids.shape[0] != probs.shape[0]:
        raise ValueError(
            f"clip_ids must be 1-D with one id per patch: got shape {ids.shape} "
            f"for {probs.shape[0]} patches"
        )
    if probs.shape[0] == 0:
        raise ValueError("no patches to average")
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # sorted-unique position -> appearance rank
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    clip_index = rank[inverse.reshape(-1)]
    sums = np.zeros((order.size, probs.shape[1]), dtype=np.float64)
    np.add.at(sums, clip_index, probs)
    counts = np.bincount(clip_index, minlength=order.size).astype(np.float64)
    return ids[np.sort(first)], sums / counts[:, None]


def fusion_combinations(kinds: Sequence[str]) -> list[tuple[str, ...]]:
    """The paper's Table 2 spectrogram combinations that can be formed from ``kinds``.

    Parameters
    ----------
    kinds : sequence of str
        Available spectrograms, by our names: ``stft``, ``logmel``, ``mfcc``, ``cqt``,
        ``gam`` (the paper's STFT, log-Mel, MFCC, CQT, GAM).

    Returns
    -------
    list of tuple of str
        The combinations of :data:`PAPER_COMBINATIONS` whose members are all in ``kinds``,
        in the paper's order (two-spectrogram groups first, all five last) and with members in
        the paper's order, e.g. ``("cqt", "logmel")``. Table 2 already ends with all five.

    Raises
    ------
    ValueError
        If a name in ``kinds`` is not one of the five spectrograms.
    """
    unknown = [k for k in kinds if k not in KIND_NAMES]
    if unknown:
        raise ValueError(f"unknown spectrogram(s) {unknown}; valid names: {', '.join(KIND_NAMES)}")
    available = set(kinds)
    return [combo for combo in PAPER_COMBINATIONS if available.issuperset(combo)]


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


@dataclass
class ClipMetrics:
    """Clip-level scores of one system (one spectrogram, or one fusion).

    Attributes
    ----------
    accuracy : float
        Fraction of clips whose argmax is the true class, in ``[0, 1]``.
    log_loss : float
        Mean negative log probability of the true class (natural log), clipped at
        :data:`LOG_LOSS_EPS`.
    n_clips : int
        Number of clips scored.
    class_accuracy : dict of str to float
        Per true class, in label order: recall of that class (``nan`` if it has no clips).
    device_accuracy : dict of str to float
        ``"A"`` (device a), ``"B&C"`` (devices b and c) when present, then every device by
        its own name; empty when no devices were given.
    confusion : numpy.ndarray
        ``(C, C)`` counts, rows true classes, columns predicted classes.
    """

    accuracy: float
    log_loss: float
    n_clips: int
    class_accuracy: dict[str, float] = field(default_factory=dict)
    device_accuracy: dict[str, float] = field(default_factory=dict)
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    def to_dict(self) -> dict:
        """Plain-Python form for ``json.dump``: ``nan`` becomes ``None``, arrays lists.

        Returns
        -------
        dict
            Keys ``accuracy``, ``log_loss``, ``n_clips``, ``labels``, ``class_accuracy``,
            ``device_accuracy`` and ``confusion`` (list of rows of ints).
        """
        return {
            "accuracy": _json_float(self.accuracy),
            "log_loss": _json_float(self.log_loss),
            "n_clips": int(self.n_clips),
            "labels": list(self.class_accuracy),
            "class_accuracy": {str(k): _json_float(v) for k, v in self.class_accuracy.items()},
            "device_accuracy": {str(k): _json_float(v) for k, v in self.device_accuracy.items()},
            "confusion": np.asarray(self.confusion).astype(np.int64).tolist(),
        }


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _label_indices(y_true: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """True classes as integer indices; accepts indices or label strings."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.dtype.kind in "USO":
        index = {str(label): i for i, label in enumerate(labels)}
        missing = sorted({str(v) for v in y} - set(index))
        if missing:
            raise ValueError(f"labels {missing} in y_true are not in labels {list(labels)}")
        return np.array([index[str(v)] for v in y], dtype=np.int64)
    if y.size and y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError("y_true must hold class indices or label strings, not fractions")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= len(labels)):
        raise ValueError(f"class indices in y_true must lie in [0, {len(labels)})")
    return y


def clip_metrics(
    probs: np.ndarray,
    y_true: np.ndarray,
    labels: Sequence[str],
    devices: Sequence[str | None] | None = None,
) -> ClipMetrics:
    """Accuracy, log loss, class-wise and device-wise accuracy and confusion of clip posteriors.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(n_clips, C)`` clip posteriors (e.g. from :func:`clip_posteriors` or :func:`fuse`).
    y_true : numpy.ndarray
        ``(n_clips,)`` true classes, as indices into ``labels`` or as label strings.
    labels : sequence of str
        The ``C`` class names, in column order of ``probs``.
    devices : sequence of str or None, optional
        Recording device of each clip (DCASE 2018 Task 1B: ``a``, ``b``, ``c``); ``None`` for
        a clip with no device. Matching of the ``A`` and ``B&C`` groups ignores case.

    Returns
    -------
    ClipMetrics
        Device groups as in DCASE 2018 Task 1B: ``"A"`` = clips of device a, ``"B&C"`` =
        clips of devices b or c (present if any such clip exists), then each device alone.

    Raises
    ------
    ValueError
        On shape mismatches, no clips, or classes outside ``labels``.
    """
    p = np.asarray(probs, dtype=np.float64)
    n_classes = len(labels)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"probs must be (n_clips, {n_classes}), got shape {p.shape}")
    if p.shape[0] == 0:
        raise ValueError("no clips to score")
    y = _label_indices(y_true, labels)
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"{y.shape[0]} labels for {p.shape[0]} clips")
    pred = p.argmax(axis=1)
    correct = pred == y
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)

    p_true = np.clip(p[np.arange(y.size), y], LOG_LOSS_EPS, 1.0)
    log_loss = float(-np.mean(np.log(p_true)))

    class_accuracy: dict[str, float] = {}
    for i, label in enumerate(labels):
        total = confusion[i].sum()
        class_accuracy[str(label)] = float(confusion[i, i] / total) if total else float("nan")

    device_accuracy: dict[str, float] = {}
    if devices is not None:
        dev = list(devices)
        if len(dev) != y.size:
            raise ValueError(f"{len(dev)} devices for {y.size} clips")
        names = [None if d is None else str(d) for d in dev]
        lowered = np.array(["" if d is None else d.lower() for d in names], dtype=object)
        for group, members in _DEVICE_GROUPS:
            mask = np.isin(lowered, list(members))
            if mask.any():
                device_accuracy[group] = float(correct[mask].mean())
        for name in sorted({d for d in names if d is not None}):
            mask = np.array([d == name for d in names])
            device_accuracy[name] = float(correct[mask].mean())

    return ClipMetrics(
        accuracy=float(correct.mean()),
        log_loss=log_loss,
        n_clips=int(y.size),
        class_accuracy=class_accuracy,
        device_accuracy=device_accuracy,
        confusion=confusion,
    )


def fusion_report(
    per_kind: Mapping[str, np.ndarray],
    y_true: np.ndarray,
    labels: Sequence[str],
    rules: Sequence[str] = FUSION_RULES,
    devices: Sequence[str | None] | None = None,
    combinations: Sequence[Sequence[str]] | None = None,
) -> dict[str, ClipMetrics]:
    """Metrics of every single spectrogram and of every Table 2 combination under every rule.

    Parameters
    ----------
    per_kind : mapping of str to numpy.ndarray
        Spectrogram name (``stft``, ``logmel``, ``mfcc``, ``cqt``, ``gam``) to its
        ``(n_clips, C)`` clip posteriors, all rows aligned on the same clips.
    y_true, labels, devices
        As for :func:`clip_metrics`.
    rules : sequence of str, optional
        Fusion rules to apply, from :data:`FUSION_RULES`.
    combinations : sequence of sequence of str, optional
        Spectrogram groups to fuse; the paper's Table 2 groups by default.

    Returns
    -------
    dict of str to ClipMetrics
        Single spectrograms first (in ``per_kind`` order, keyed by name), then for each
        combination of :func:`fusion_combinations` and each rule a key like
        ``"cqt+logmel/mean"`` (members joined by ``+`` in the paper's order).

    Raises
    ------
    ValueError
        For unknown spectrogram names or rules, or posteriors of different shapes.
    """
    bad_rules = [r for r in rules if r not in FUSION_RULES]
    if bad_rules:
        raise ValueError(f"unknown fusion rule(s) {bad_rules}; valid rules: {FUSION_RULES}")
    combos = fusion_combinations(list(per_kind)) if combinations is None else combinations
    missing = sorted({k for combo in combos for k in combo} - set(per_kind))
    if missing:
        raise ValueError(f"fusion needs posteriors of {', '.join(missing)}")
    shapes = {k: np.shape(v) for k, v in per_kind.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"clip posteriors of different shapes: {shapes}")
    report = {
        kind: clip_metrics(probs, y_true, labels, devices) for kind, probs in per_kind.items()
    }
    for combo in combos:
        inputs = [per_kind[k] for k in combo]
        for rule in rules:
            report[f"{'+'.join(combo)}/{rule}"] = clip_metrics(
                fuse(inputs, rule), y_true, labels, devices
            )
    return report


def metrics_table(
    report: Mapping[str, ClipMetrics], columns: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Turn a :func:`fusion_report` into rows for :func:`format_paper_table` (values in %).

    Parameters
    ----------
    report : mapping of str to ClipMetrics
        System name to its metrics.
    columns : sequence of str, optional
        Which columns: ``"accuracy"`` (all clips) and/or device groups (``"A"``, ``"B&C"``,
        a device name). Default: ``A``, ``B&C`` where present, then ``accuracy``, like the
        paper's Table 5 (its ``A&B&C`` column).

    Returns
    -------
    dict of str to dict of str to float
        ``{system: {column: percent}}``; a device group a system lacks is left out.
    """
    table: dict[str, dict[str, float]] = {}
    for name, m in report.items():
        cols = columns
        if cols is None:
            cols = [*(g for g, _ in _DEVICE_GROUPS if g in m.device_accuracy), "accuracy"]
        row: dict[str, float] = {}
        for col in cols:
            if col == "accuracy":
                row[col] = 100.0 * m.accuracy
            elif col in m.device_accuracy:
                row[col] = 100.0 * m.device_accuracy[col]
        table[name] = row
    return table


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------


def write_confusion_csv(
    path: str | os.PathLike[str], confusion: np.ndarray, labels: Sequence[str]
) -> None:
    """Write a confusion matrix as CSV: a header of predicted labels, one row per true label.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV to write (atomically; its directory must exist).
    confusion : numpy.ndarray
        ``(C, C)`` counts, rows true, columns predicted.
    labels : sequence of str
        The ``C`` class names.

    Raises
    ------
    ValueError
        If the matrix is not ``(C, C)`` for ``C = len(labels)``.
    """
    matrix = _check_confusion(confusion, labels)
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *map(str, labels)])
        for label, row in zip(labels, matrix, strict=True):
            writer.writerow([str(label), *(_format_count(v) for v in row)])


def read_confusion_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Read a CSV written by :func:`write_confusion_csv`.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    confusion : numpy.ndarray
        ``(C, C)`` int64 counts (float64 if the file holds fractions).
    labels : list of str
        The class names from the header.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty confusion CSV")
    labels = rows[0][1:]
    body = rows[1:]
    if [r[0] for r in body] != labels or any(len(r) != len(labels) + 1 for r in body):
        raise ValueError(f"{path}: not a square confusion matrix with matching labels")
    values = np.array([[float(v) for v in r[1:]] for r in body], dtype=np.float64)
    values = values.reshape(len(labels), len(labels))
    if np.all(values == np.round(values)):
        return values.astype(np.int64), labels
    return values, labels


def _format_count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_confusion(confusion: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    matrix = np.asarray(confusion)
    n = len(labels)
    if matrix.shape != (n, n):
        raise ValueError(f"confusion must be ({n}, {n}) for {n} labels, got {matrix.shape}")
    return matrix


def plot_confusion(
    path: str | os.PathLike[str], confusion: np.ndarray, labels: Sequence[str], title: str = ""
) -> None:
    """Draw a confusion matrix to PNG: colours by row-normalised rate, counts in the cells.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG to write (atomically: on any failure nothing is left behind).
    confusion : numpy.ndarray
        ``(C, C)`` counts, rows true, columns predicted.
    labels : sequence of str
        The ``C`` class names.
    title : str, optional
        Figure title.

    Raises
    ------
    FileNotFoundError
        If the directory of ``path`` does not exist.
    ValueError
        If the matrix is not ``(C, C)``.
    """
    # Figure without pyplot: the Agg canvas is used for PNG and no global backend is touched.
    from matplotlib.figure import Figure

    matrix = _check_confusion(confusion, labels).astype(np.float64)
    n = len(labels)
    totals = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)

    size = max(4.0, 0.55 * n + 2.5)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="fraction of true class", shrink=0.8)
    fontsize = 9 if n <= 12 else 7
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                _format_count(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(n), [str(lab) for lab in labels], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(lab) for lab in labels])
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if title:
        ax.set_title(title)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


# --------------------------------------------------------------------------------------------
# Paper-style text table
# --------------------------------------------------------------------------------------------


def _row_group(name: str) -> int:
    """Number of spectrograms in a row name like ``cqt+logmel (mean)``; 0 if not a kind."""
    stem = name.split(" (", 1)[0].split("/", 1)[0].strip()
    parts = [p.strip().lower() for p in stem.split("+")]
    if all(p in _ROW_NAME_ALIASES for p in parts):
        return len(parts)
    return 0


def format_paper_table(
    results: Mapping[str, Mapping[str, float]],
    title: str,
    *,
    lower_is_better: Collection[str] = (),
    decimals: int = 1,
) -> str:
    """A fixed-width text table shaped like the paper's Tables 5-7.

    Parameters
    ----------
    results : mapping of str to mapping of str to float
        ``{row name: {column name: value in %}}``, e.g. ``{"logmel": {"A": 68.2, "B&C":
        54.7}, "cqt+logmel (mean)": {...}}``. Columns are the union of all rows' keys in order
        of first appearance; a missing or non-finite value prints as ``-``.
    title : str
        Printed above the table.
    lower_is_better : collection of str, optional
        Columns whose best value is the smallest (e.g. a log loss); others: the largest.
    decimals : int, optional
        Decimals printed (the paper uses 1).

    Returns
    -------
    str
        The table. Rows whose names are not spectrograms (e.g. a baseline) come first, then
        single spectrograms, then combinations by size under the paper's group headings
        ("Two spectrograms", ...), each in the given order. The best value of every column
        (ties on the printed value included) is followed by ``*``.
    """
    columns: list[str] = []
    for row in results.values():
        columns.extend(c for c in row if c not in columns)

    def cell(value: float | None) -> str:
        if value is None or not math.isfinite(float(value)):
            return "-"
        return f"{float(value):.{decimals}f}"

    best: dict[str, str] = {}
    for col in columns:
        shown = [
            (float(row[col]), cell(row[col]))
            for row in results.values()
            if col in row and cell(row[col]) != "-"
        ]
        if shown:
            pick = min if col in lower_is_better else max
            best[col] = cell(pick(v for v, _ in shown))

    groups: dict[int, list[str]] = {}
    for name in results:
        groups.setdefault(_row_group(name), []).append(name)

    lines_body: list[tuple[str, list[str]] | str] = []
    multi_group = len([g for g in groups if g > 0]) > 1 or 0 in groups
    for g in sorted(groups):
        if g > 0 and multi_group:
            lines_body.append(_GROUP_TITLES.get(g, f"{g} spectrograms"))
        for name in groups[g]:
            row = results[name]
            cells = []
            for col in columns:
                text = cell(row.get(col))
                cells.append(text + ("*" if text != "-" and best.get(col) == text else " "))
            indent = "  " if g > 0 and multi_group else ""
            lines_body.append((indent + name, cells))

    first_header = "Spectrograms"
    name_width = max(
        [len(first_header)]
        + [len(item[0]) if isinstance(item, tuple) else len(item) for item in lines_body]
    )
    widths = [
        max([len(col) + 1] + [len(item[1][j]) for item in lines_body if isinstance(item, tuple)])
        for j, col in enumerate(columns)
    ]
    header = first_header.ljust(name_width) + "".join(
        "  " + col.rjust(w - 1) + " " for col, w in zip(columns, widths, strict=True)
    )
    rule = "-" * len(header.rstrip())
    out = [title, "=" * max(len(title), len(rule)), header.rstrip(), rule]
    for item in lines_body:
        if isinstance(item, str):
            out.append(item)
        else:
            name, cells = item
            out.append(
                (
                    name.ljust(name_width)
                    + "".join("  " + c.rjust(w) for c, w in zip(cells, widths, strict=True))
                ).rstrip()
            )
    out.append(rule)
    out.append("* best value in its column")
    return "\n".join(out) + "\n"
