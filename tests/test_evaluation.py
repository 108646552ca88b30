"""Tests for edge_asc.train.evaluation: clip averaging, late fusion, metrics, reports."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edge_asc.train import evaluation as ev
from edge_asc.train.evaluation import (
    FUSION_RULES,
    ClipMetrics,
    clip_metrics,
    clip_posteriors,
    format_paper_table,
    fuse,
    fusion_combinations,
    fusion_report,
    metrics_table,
    plot_confusion,
    read_confusion_csv,
    write_confusion_csv,
)

ALL_KINDS = ("stft", "logmel", "mfcc", "cqt", "gam")

# --------------------------------------------------------------------------------------------
# clip_posteriors (eq. 18)
# --------------------------------------------------------------------------------------------


def test_clip_posteriors_averages_in_first_appearance_order() -> None:
    probs = np.array(
        [
            [0.8, 0.2],  # clip "z"
            [0.1, 0.9],  # clip "a"
            [0.4, 0.6],  # clip "z"
            [0.3, 0.7],  # clip "m"
            [0.5, 0.5],  # clip "a"
            [0.6, 0.4],  # clip "z"
        ]
    )
    ids = np.array(["z", "a", "z", "m", "a", "z"])
    clips, clip_probs = clip_posteriors(probs, ids)
    assert clips.tolist() == ["z", "a", "m"]  # not sorted: order of first patch
    np.testing.assert_allclose(clip_probs, [[0.6, 0.4], [0.3, 0.7], [0.3, 0.7]], rtol=0, atol=1e-12)
    assert clip_probs.dtype == np.float64


def test_clip_posteriors_integer_ids_and_single_patch_clips() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]], dtype=np.float32)
    clips, clip_probs = clip_posteriors(probs, np.array([7, 3, 7]))
    assert clips.tolist() == [7, 3]
    np.testing.assert_allclose(clip_probs, [[0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])


def test_clip_posteriors_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="one id per patch"):
        clip_posteriors(np.ones((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="n_patches, C"):
        clip_posteriors(np.ones(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="no patches"):
        clip_posteriors(np.ones((0, 2)), np.array([], dtype=int))


# --------------------------------------------------------------------------------------------
# fuse (eqs. 20, 23, 24)
# --------------------------------------------------------------------------------------------

P1 = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
P2 = np.array([[0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])


def test_fuse_mean_by_hand() -> None:
    np.testing.assert_allclose(
        fuse([P1, P2], "mean"), [[0.35, 0.45, 0.2], [0.2, 0.2, 0.6]], atol=1e-12
    )


def test_fuse_prod_by_hand() -> None:
    # row 0: 0.10, 0.18, 0.04 (sum 0.32); row 1: 0.03, 0.03, 0.32 (sum 0.38)
    expected = [[0.10 / 0.32, 0.18 / 0.32, 0.04 / 0.32], [0.03 / 0.38, 0.03 / 0.38, 0.32 / 0.38]]
    np.testing.assert_allclose(fuse([P1, P2], "prod"), expected, atol=1e-12)


def test_fuse_max_by_hand() -> None:
    # row 0: 0.5, 0.6, 0.2 (sum 1.3); row 1: 0.3, 0.3, 0.8 (sum 1.4)
    expected = [[0.5 / 1.3, 0.6 / 1.3, 0.2 / 1.3], [0.3 / 1.4, 0.3 / 1.4, 0.8 / 1.4]]
    np.testing.assert_allclose(fuse([P1, P2], "max"), expected, atol=1e-12)


def test_fuse_rules_can_disagree_on_argmax() -> None:
    # Mean favours the class one model is sure of; Prod the class nobody rules out.
    a = np.array([[0.90, 0.10, 0.00]])
    b = np.array([[0.00, 0.45, 0.55]])
    assert fuse([a, b], "mean").argmax() == 0
    assert fuse([a, b], "max").argmax() == 0
    assert fuse([a, b], "prod").argmax() == 1


def test_fuse_prod_of_many_tiny_probabilities_stays_finite() -> None:
    # Five float32 posteriors over 3 classes. Every class is tiny in at least two of them, so
    # the naive float32 product underflows to 0 everywhere (and renormalising gives 0/0).
    tiny_a, tiny_b = np.float32(1e-25), np.float32(1e-20)
    rows = [
        [1.0, tiny_b, tiny_b],  # model 0: sure of class 0
        [tiny_a, 1.0, tiny_b],  # model 1: sure of class 1
        [tiny_a, tiny_b, 1.0],  # model 2: sure of class 2
        [1.0, tiny_b, tiny_b],  # model 3: sure of class 0
        [1.0, tiny_b, tiny_b],  # model 4: sure of class 0
    ]
    inputs = [np.array([r], dtype=np.float32) for r in rows]
    naive = np.prod(np.stack(inputs), axis=0)
    assert np.all(naive == 0)  # the hazard being guarded against
    fused = fuse(inputs, "prod")
    assert np.all(np.isfinite(fused))
    np.testing.assert_allclose(fused.sum(axis=1), 1.0)
    # class 0 is tiny in 2 models, classes 1 and 2 in 4 models each
    assert fused.argmax(axis=1).tolist() == [0]
    assert fused[0, 0] > 0.999


def test_fuse_prod_zero_probability_is_floored_not_nan() -> None:
    a = np.array([[0.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 1.0], [0.0, 0.0]])
    fused = fuse([a, b], "prod")
    assert np.all(np.isfinite(fused))
    np.testing.assert_allclose(fused[0], [0.0, 1.0], atol=1e-20)
    np.testing.assert_allclose(fused[1], [0.5, 0.5])  # all-zero row: uniform, not 0/0


@pytest.mark.parametrize("rule", ["mean", "max"])
def test_fusing_identical_posteriors_returns_it(rule: str) -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=25)
    np.testing.assert_allclose(fuse([p, p, p], rule), p, atol=1e-12)


def test_fuse_outputs_are_distributions() -> None:
    rng = np.random.default_rng(1)
    inputs = [rng.dirichlet(np.ones(6), size=40) for _ in range(4)]
    for rule in FUSION_RULES:
        out = fuse(inputs, rule)
        assert out.shape == (40, 6)
        np.testing.assert_allclose(out.sum(axis=1), 1.0)
        assert np.all(out >= 0)


def test_fuse_errors() -> None:
    with pytest.raises(ValueError, match="mean, prod, max"):
        fuse([P1, P2], "median")
    with pytest.raises(ValueError, match="shape"):
        fuse([P1, P2[:, :2]], "mean")
    with pytest.raises(ValueError, match="shape"):
        fuse([P1, P2[:1]], "prod")
    with pytest.raises(ValueError, match="no posteriors"):
        fuse([], "mean")


# --------------------------------------------------------------------------------------------
# fusion_combinations (Table 2)
# --------------------------------------------------------------------------------------------


def test_fusion_combinations_all_five_is_table_2() -> None:
    assert fusion_combinations(ALL_KINDS) == [
        ("cqt", "stft"),
        ("cqt", "gam"),
        ("cqt", "logmel"),
        ("cqt", "mfcc"),
        ("cqt", "gam", "logmel"),
        ("cqt", "gam", "mfcc"),
        ("cqt", "gam", "stft", "mfcc"),
        ("cqt", "gam", "stft", "logmel"),
        ("cqt", "gam", "stft", "mfcc", "logmel"),
    ]
    # input order does not matter
    assert fusion_combinations(ALL_KINDS[::-1]) == fusion_combinations(ALL_KINDS)


def test_fusion_combinations_subset() -> None:
    assert fusion_combinations(["logmel", "cqt", "gam"]) == [
        ("cqt", "gam"),
        ("cqt", "logmel"),
        ("cqt", "gam", "logmel"),
    ]
    assert fusion_combinations(["logmel", "cqt"]) == [("cqt", "logmel")]
    assert fusion_combinations(["logmel", "mfcc", "stft", "gam"]) == []  # every group has CQT
    assert fusion_combinations([]) == []


def test_fusion_combinations_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="log-mel"):
        fusion_combinations(["log-mel", "cqt"])


# --------------------------------------------------------------------------------------------
# clip_metrics
# --------------------------------------------------------------------------------------------

LABELS = ("bus", "park", "metro")
# 6 clips; argmax per row is given in the comment.
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # true bus,   pred bus    device a
        [0.2, 0.5, 0.3],  # true bus,   pred park   device b
        [0.1, 0.8, 0.1],  # true park,  pred park   device a
        [0.0, 0.4, 0.6],  # true park,  pred metro  device c  (p_true 0.4)
        [0.3, 0.0, 0.7],  # true metro, pred metro  device c
        [0.6, 0.4, 0.0],  # true metro, pred bus    device b  (p_true 0 -> clipped)
    ]
)
Y = np.array([0, 0, 1, 1, 2, 2])
DEVICES = ["a", "b", "a", "c", "c", "b"]


def test_clip_metrics_by_hand() -> None:
    m = clip_metrics(PROBS, Y, LABELS, DEVICES)
    assert m.n_clips == 6
    assert m.accuracy == pytest.approx(3 / 6)
    np.testing.assert_array_equal(m.confusion, [[1, 1, 0], [0, 1, 1], [1, 0, 1]])
    assert m.confusion.sum(axis=1).tolist() == [2, 2, 2]
    assert m.class_accuracy == {"bus": 0.5, "park": 0.5, "metro": 0.5}
    # device a: clips 0, 2 both right; b: clips 1, 5 both wrong; c: clip 3 wrong, 4 right
    assert m.device_accuracy == {"A": 1.0, "B&C": 0.25, "a": 1.0, "b": 0.0, "c": 0.5}
    assert list(m.device_accuracy)[:2] == ["A", "B&C"]
    expected_loss = (
        -(
            math.log(0.7)
            + math.log(0.2)
            + math.log(0.8)
            + math.log(0.4)
            + math.log(0.7)
            + math.log(ev.LOG_LOSS_EPS)  # a 0 probability is clipped, not -log(0) = inf
        )
        / 6
    )
    assert m.log_loss == pytest.approx(expected_loss, rel=1e-12)
    assert math.isfinite(m.log_loss)


def test_clip_metrics_string_labels_equal_indices() -> None:
    by_name = clip_metrics(PROBS, np.array([LABELS[i] for i in Y]), LABELS)
    by_index = clip_metrics(PROBS, Y, LABELS)
    assert by_name.to_dict() == by_index.to_dict()
    assert by_index.device_accuracy == {}


def test_clip_metrics_device_groups_only_when_present() -> None:
    m = clip_metrics(PROBS, Y, LABELS, ["b", "b", "c", "c", None, "c"])
    assert "A" not in m.device_accuracy and "a" not in m.device_accuracy
    assert m.device_accuracy["B&C"] == pytest.approx(2 / 5)  # the None clip is in no group
    m = clip_metrics(PROBS, Y, LABELS, ["A", "A", "A", "A", "A", "A"])  # case-insensitive group
    assert m.device_accuracy == {"A": 0.5}


def test_clip_metrics_class_without_clips_is_nan_and_json_null() -> None:
    m = clip_metrics(PROBS[:2], Y[:2], LABELS)
    assert math.isnan(m.class_accuracy["metro"])
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["class_accuracy"]["metro"] is None
    assert d["labels"] == list(LABELS)
    assert d["confusion"] == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_clip_metrics_to_dict_is_json() -> None:
    m = clip_metrics(PROBS, Y, LABELS, DEVICES)
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["accuracy"] == pytest.approx(0.5)
    assert d["n_clips"] == 6
    assert d["device_accuracy"]["B&C"] == pytest.approx(0.25)
    assert d["confusion"] == m.confusion.tolist()


def test_clip_metrics_errors() -> None:
    with pytest.raises(ValueError, match="labels"):
        clip_metrics(PROBS, Y[:5], LABELS)
    with pytest.raises(ValueError, match="n_clips, 2"):
        clip_metrics(PROBS, Y, LABELS[:2])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        clip_metrics(PROBS, np.array([0, 0, 1, 1, 2, 3]), LABELS)
    with pytest.raises(ValueError, match="not in labels"):
        clip_metrics(PROBS, np.array(["bus"] * 5 + ["tram"]), LABELS)
    with pytest.raises(ValueError, match="devices"):
        clip_metrics(PROBS, Y, LABELS, ["a"] * 5)


# --------------------------------------------------------------------------------------------
# fusion_report / metrics_table
# --------------------------------------------------------------------------------------------


def test_fusion_report_keys_and_values() -> None:
    rng = np.random.default_rng(2)
    n, c = 30, 4
    y = rng.integers(0, c, size=n)
    per_kind = {k: rng.dirichlet(np.ones(c), size=n) for k in ("logmel", "cqt", "gam")}
    labels = [f"c{i}" for i in range(c)]
    devices = ["a", "b", "c"] * (n // 3)
    report = fusion_report(per_kind, y, labels, devices=devices)
    expected = ["logmel", "cqt", "gam"] + [
        f"{combo}/{rule}"
        for combo in ("cqt+gam", "cqt+logmel", "cqt+gam+logmel")
        for rule in FUSION_RULES
    ]
    assert list(report) == expected
    assert all(isinstance(m, ClipMetrics) for m in report.values())
    fused = fuse([per_kind["cqt"], per_kind["gam"], per_kind["logmel"]], "prod")
    assert report["cqt+gam+logmel/prod"].accuracy == pytest.approx(
        float(np.mean(fused.argmax(axis=1) == y))
    )
    assert (
        report["logmel"].to_dict() == clip_metrics(per_kind["logmel"], y, labels, devices).to_dict()
    )

    only_mean = fusion_report(per_kind, y, labels, rules=("mean",))
    assert list(only_mean)[3:] == ["cqt+gam/mean", "cqt+logmel/mean", "cqt+gam+logmel/mean"]
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fusion_report(per_kind, y, labels, rules=("sum",))

    table = metrics_table(report)
    assert list(table["logmel"]) == ["A", "B&C", "accuracy"]
    assert table["cqt+gam/max"]["accuracy"] == pytest.approx(100 * report["cqt+gam/max"].accuracy)


# --------------------------------------------------------------------------------------------
# Files: CSV and PNG
# --------------------------------------------------------------------------------------------


def test_confusion_csv_round_trip(tmp_path: Path) -> None:
    confusion = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    labels = ["bus", "city center", "metro,station"]  # a space and a comma survive quoting
    path = tmp_path / "confusion.csv"
    write_confusion_csv(path, confusion, labels)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == labels  # header: predicted labels
    assert [r[0] for r in rows[1:]] == labels  # first column: true labels
    assert rows[2] == ["city center", "2", "7", "1"]
    back, back_labels = read_confusion_csv(path)
    np.testing.assert_array_equal(back, confusion)
    assert back_labels == labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.csv"]


def test_confusion_csv_rejects_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        write_confusion_csv(tmp_path / "x.csv", np.zeros((3, 3)), ["a", "b"])
    assert list(tmp_path.iterdir()) == []


def test_plot_confusion_writes_png(tmp_path: Path) -> None:
    confusion = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])  # a row with no clips is fine
    path = tmp_path / "confusion.png"
    plot_confusion(path, confusion, ["bus", "park", "metro"], title="logmel")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png"]


def test_plot_confusion_missing_directory_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        plot_confusion(tmp_path / "missing" / "c.png", np.eye(2), ["a", "b"])
    assert list(tmp_path.iterdir()) == []


def test_plot_confusion_failure_while_saving_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    path = tmp_path / "c.png"
    path.write_bytes(b"old")

    def broken_savefig(self: Figure, fname: object, **kwargs: object) -> None:
        Path(str(fname)).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_confusion(path, np.eye(2), ["a", "b"])
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png"]


# --------------------------------------------------------------------------------------------
# format_paper_table
# --------------------------------------------------------------------------------------------


def _cell_line(text: str, row: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(row + " "))


def test_format_paper_table_shape_and_best() -> None:
    results = {
        "DCASE baseline": {"A": 58.9, "B&C": 45.6, "A&B&C": 52.2},
        "logmel": {"A": 68.2, "B&C": 54.7, "A&B&C": 61.4},
        "cqt": {"A": 58.4, "B&C": 47.8, "A&B&C": 53.1},
        "cqt+logmel (mean)": {"A": 72.0, "B&C": 60.8, "A&B&C": 66.4},
        "cqt+gam+logmel (prod)": {"A": 74.1, "B&C": 62.5, "A&B&C": 68.3},
        "cqt+gam+stft+logmel (mean)": {"A": 74.4, "B&C": 62.5},  # no A&B&C value
    }
    text = format_paper_table(results, "Table 5: C-DNN on DCASE 2018 Task 1B")
    lines = text.splitlines()
    assert lines[0] == "Table 5: C-DNN on DCASE 2018 Task 1B"
    for name in results:
        assert name in text
    for col in ("A", "B&C", "A&B&C"):
        assert col in lines[2].split()
    # best per column marked, ties on the printed value both marked
    assert "74.4*" in _cell_line(text, "cqt+gam+stft+logmel (mean)")
    assert "68.3*" in _cell_line(text, "cqt+gam+logmel (prod)")
    assert "62.5*" in _cell_line(text, "cqt+gam+logmel (prod)")
    assert "62.5*" in _cell_line(text, "cqt+gam+stft+logmel (mean)")
    assert text.count("*") == 4 + 1  # four marks and the footnote
    assert "-" in _cell_line(text, "cqt+gam+stft+logmel (mean)").split()
    # paper layout: baseline, single spectrograms, then combinations by size
    order = [
        i for i, line in enumerate(lines) for name in results if line.strip().startswith(name + " ")
    ]
    assert order == sorted(order)
    assert lines.index("Single spectrogram") < lines.index("Two spectrograms")
    assert lines.index("Three spectrograms") < lines.index("Four spectrograms")
    assert _cell_line(text, "DCASE baseline").index("DCASE") == 0
    # fixed width: every data line has its numbers in the same columns
    first, second = _cell_line(text, "logmel"), _cell_line(text, "cqt")
    assert first.index("68.2") == second.index("58.4")


def test_format_paper_table_lower_is_better_and_datasets() -> None:
    results = {
        "logmel": {"LITIS": 98.0, "DCASE 2016": 85.1, "log loss": 0.61},
        "cqt+logmel/prod": {"LITIS": 99.1, "DCASE 2016": 89.2, "log loss": 0.55},
    }
    text = format_paper_table(results, "Table 7", lower_is_better={"log loss"})
    assert text.count("0.6*") == 2  # 0.61 and 0.55 both print as 0.6: a tie, both marked
    text = format_paper_table(results, "Table 7", lower_is_better={"log loss"}, decimals=2)
    assert "0.55*" in text and "99.10*" in text and "89.20*" in text
    for col in ("LITIS", "DCASE 2016", "log loss"):
        assert col in text
