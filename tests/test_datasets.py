"""Tests for edge_asc.train.datasets.

Each reader is run on a small tree laid out exactly like the published dataset (same
metadata files, columns and file-name patterns), whose audio files are symlinks to real
ESC-10 clips from the shared data folder, and the generic ``csv`` reader is run on the
real ESC-10 manifest itself.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from edge_asc.train.datasets import (
    DATASETS,
    EVAL_FOLD,
    Clip,
    DatasetError,
    DatasetIndex,
    Split,
    read_dataset,
)

# --------------------------------------------------------------------------------------
# Fixture trees
# --------------------------------------------------------------------------------------


class Tree:
    """Builds a dataset tree under ``root``; audio files are symlinks to real clips."""

    def __init__(self, root: Path, real_clips: list[Path]) -> None:
        self.root = root
        self._real = real_clips
        self._next = 0
        root.mkdir(parents=True, exist_ok=True)

    def audio(self, rel: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(self._real[self._next % len(self._real)], path)
        self._next += 1
        return path

    def write(self, rel: str, lines: list[str]) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    def replace_line(self, rel: str, line_no: int, text: str) -> None:
        path = self.root / rel
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[line_no - 1] = text
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def real_clips(shared_data: Path, esc10_rows: list[dict[str, str]]) -> list[Path]:
    """Twenty real ESC-10 clips (sorted, so the fixture trees are deterministic)."""
    paths = sorted(shared_data / "esc10" / row["filename"] for row in esc10_rows)[:20]
    assert all(p.is_file() for p in paths)
    return paths


@pytest.fixture
def make_tree(tmp_path: Path, real_clips: list[Path]):
    def make(name: str) -> Tree:
        return Tree(tmp_path / name, real_clips)

    return make


def _names(index: DatasetIndex, indices: tuple[int, ...]) -> set[str]:
    return {index.clips[i].path.name for i in indices}


def _check_partition(index: DatasetIndex, split: Split) -> None:
    assert not set(split.train) & set(split.test)
    assert list(split.train) == sorted(split.train)
    assert list(split.test) == sorted(split.test)


# TUT Acoustic Scenes 2016 / 2017 --------------------------------------------------------

TUT_SCENES = ("beach", "bus", "office")


def build_tut(tree: Tree, *, segment_s: int, identifier_column: bool) -> None:
    """3 scenes x 4 recordings x 2 segments; recording r of every scene is fold r's test."""
    meta: list[str] = []
    train: dict[int, list[str]] = {k: [] for k in range(1, 5)}
    test: dict[int, list[str]] = {k: [] for k in range(1, 5)}
    for s, scene in enumerate(TUT_SCENES):
        for r in range(1, 5):
            rec = f"{'abc'[s]}{r:03d}"
            for seg in range(2):
                rel = f"audio/{rec}_{seg * segment_s}_{(seg + 1) * segment_s}.wav"
                tree.audio(rel)
                meta.append(f"{rel}\t{scene}" + (f"\t{rec}" if identifier_column else ""))
                for k in range(1, 5):
                    (test if k == r else train)[k].append(f"{rel}\t{scene}")
    tree.write("meta.txt", meta)
    for k in range(1, 5):
        tree.write(f"evaluation_setup/fold{k}_train.txt", train[k])
        tree.write(f"evaluation_setup/fold{k}_evaluate.txt", test[k])
        tree.write(f"evaluation_setup/fold{k}_test.txt", [t.split("\t")[0] for t in test[k]])


@pytest.mark.parametrize(
    ("name", "segment_s", "identifier_column"),
    [("dcase2016", 30, False), ("dcase2017", 10, True)],
)
def test_tut_development_folds(make_tree, name: str, segment_s: int, identifier_column: bool):
    tree = make_tree(name)
    build_tut(tree, segment_s=segment_s, identifier_column=identifier_column)
    index = read_dataset(name, tree.root)

    assert index.name == name
    assert index.root == tree.root
    assert len(index.clips) == 24
    assert index.labels == ["beach", "bus", "office"]
    assert sorted(index.folds) == [1, 2, 3, 4]
    first = index.clips[0]
    assert first == Clip(
        path=tree.root / "audio" / f"a001_0_{segment_s}.wav", label="beach", source="a001"
    )
    assert first.path.is_absolute() and first.path.is_file()
    assert Counter(c.label for c in index.clips) == {"beach": 8, "bus": 8, "office": 8}
    for k in range(1, 5):
        split = index.split(k)
        _check_partition(index, split)
        assert len(split.train) == 18 and len(split.test) == 6
        assert {index.clips[i].source for i in split.test} == {f"{x}{k:03d}" for x in "abc"}
        # segments of one recording never straddle train and test
        assert not {index.clips[i].source for i in split.train} & {
            index.clips[i].source for i in split.test
        }
    assert _names(index, index.split(2).test) == {
        f"{x}002_{a}_{b}.wav"
        for x in "abc"
        for a, b in [(0, segment_s), (segment_s, 2 * segment_s)]
    }
    everything = Split(train=tuple(range(24)), test=())
    assert index.split(None) == everything
    assert index.split(0) == everything
    assert [index.label_index(c) for c in index.clips[:2]] == [0, 0]
    assert index.label_index(index.clips[-1]) == 2


def test_tut_test_list_is_used_when_evaluate_list_is_absent(make_tree):
    tree = make_tree("dcase2016")
    build_tut(tree, segment_s=30, identifier_column=False)
    with_evaluate = read_dataset("dcase2016", tree.root)
    (tree.root / "evaluation_setup" / "fold3_evaluate.txt").unlink()
    without = read_dataset("dcase2016", tree.root)
    assert without.folds == with_evaluate.folds


def test_dcase2016_evaluation_root_adds_eval_fold(make_tree):
    dev = make_tree("TUT-acoustic-scenes-2016-development")
    build_tut(dev, segment_s=30, identifier_column=False)
    ev = make_tree("TUT-acoustic-scenes-2016-evaluation")
    eval_meta = []
    for n, scene in enumerate(["beach", "bus", "office", "bus"], 1):
        ev.audio(f"audio/{n}.wav")
        eval_meta.append(f"audio/{n}.wav\t{scene}")
    ev.write("meta.txt", eval_meta)

    index = read_dataset("dcase2016", str(dev.root), evaluation_root=str(ev.root))
    assert len(index.clips) == 28
    assert sorted(index.folds) == [EVAL_FOLD, 1, 2, 3, 4]
    split = index.split(EVAL_FOLD)
    assert split.train == tuple(range(24))
    assert split.test == (24, 25, 26, 27)
    assert [index.clips[i].path for i in split.test] == [
        ev.root / "audio" / f"{n}.wav" for n in range(1, 5)
    ]
    assert index.clips[25].label == "bus"
    assert index.split(1) == read_dataset("dcase2016", dev.root).split(1)


def test_dcase2016_evaluation_root_without_meta_is_an_error(make_tree):
    dev = make_tree("dev")
    build_tut(dev, segment_s=30, identifier_column=False)
    ev = make_tree("eval")
    with pytest.raises(DatasetError, match=r"meta\.txt") as info:
        read_dataset("dcase2016", dev.root, evaluation_root=ev.root)
    assert str(ev.root / "meta.txt") in str(info.value)


def test_tut_missing_meta_file(make_tree):
    tree = make_tree("dcase2017")
    build_tut(tree, segment_s=10, identifier_column=True)
    (tree.root / "meta.txt").unlink()
    with pytest.raises(DatasetError) as info:
        read_dataset("dcase2017", tree.root)
    assert str(tree.root / "meta.txt") in str(info.value)
    assert "\n" not in str(info.value)


def test_tut_missing_fold_lists(make_tree):
    tree = make_tree("dcase2016")
    build_tut(tree, segment_s=30, identifier_column=False)
    shutil.rmtree(tree.root / "evaluation_setup")
    with pytest.raises(DatasetError, match=r"fold1_train\.txt"):
        read_dataset("dcase2016", tree.root)


def test_tut_malformed_meta_line_names_file_and_line(make_tree):
    tree = make_tree("dcase2016")
    build_tut(tree, segment_s=30, identifier_column=False)
    tree.replace_line("meta.txt", 3, "audio/a002_0_30.wav")  # label column missing
    with pytest.raises(DatasetError) as info:
        read_dataset("dcase2016", tree.root)
    assert f"{tree.root / 'meta.txt'}:3:" in str(info.value)


def test_tut_unknown_label_in_fold_file(make_tree):
    tree = make_tree("dcase2017")
    build_tut(tree, segment_s=10, identifier_column=True)
    tree.replace_line("evaluation_setup/fold2_train.txt", 5, "audio/a003_0_10.wav\tforest_path")
    with pytest.raises(DatasetError, match="unknown scene label 'forest_path'") as info:
        read_dataset("dcase2017", tree.root)
    assert f"{tree.root / 'evaluation_setup' / 'fold2_train.txt'}:5:" in str(info.value)


def test_tut_fold_file_with_unlisted_audio(make_tree):
    tree = make_tree("dcase2016")
    build_tut(tree, segment_s=30, identifier_column=False)
    tree.replace_line("evaluation_setup/fold4_evaluate.txt", 1, "audio/z999_0_30.wav\tbeach")
    with pytest.raises(DatasetError, match=r"z999_0_30\.wav") as info:
        read_dataset("dcase2016", tree.root)
    assert "fold4_evaluate.txt:1:" in str(info.value)


def test_tut_missing_audio_file_names_it(make_tree):
    tree = make_tree("dcase2016")
    build_tut(tree, segment_s=30, identifier_column=False)
    gone = tree.root / "audio" / "b003_30_60.wav"
    gone.unlink()
    with pytest.raises(DatasetError) as info:
        read_dataset("dcase2016", tree.root)
    assert str(gone) in str(info.value)
    assert "meta.txt:14:" in str(info.value)
    assert len(read_dataset("dcase2016", tree.root, check_audio=False).clips) == 24


def test_unknown_fold_lists_available_folds(make_tree):
    tree = make_tree("dcase2016")
    build_tut(tree, segment_s=30, identifier_column=False)
    index = read_dataset("dcase2016", tree.root)
    with pytest.raises(DatasetError, match=r"available folds: 1, 2, 3, 4"):
        index.split(5)
    for not_a_fold in ("1", 1.0, True):
        with pytest.raises(DatasetError, match="no fold"):
            index.split(not_a_fold)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="available folds"):
        index.split(EVAL_FOLD)  # no evaluation set given


# TUT / TAU Urban Acoustic Scenes 2018+ ---------------------------------------------------


def build_tau(
    tree: Tree,
    *,
    devices: dict[int, tuple[str, ...]],
    scenes: tuple[str, ...] = ("airport", "metro_station"),
    fold_ext: str = "csv",
    unused: tuple[str, ...] = (),
) -> dict[str, str]:
    """Scenes x {barcelona, helsinki} x 2 locations x 2 segments, with ``devices[seg]``.

    Barcelona locations train, Helsinki locations test; returns rel path -> device. Devices
    in ``unused`` are listed in meta.csv only (as the TAU 2020 S4-S6 surplus is).
    """
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    header = ["filename\tscene_label"] if fold_ext == "csv" else []
    train, evaluate = list(header), list(header)
    test = ["filename"] if fold_ext == "csv" else []
    device_of: dict[str, str] = {}
    for scene in scenes:
        for city in ("barcelona", "helsinki"):
            for loc in (0, 1):
                for seg in (0, 1):
                    for dev in devices[seg]:
                        rel = f"audio/{scene}-{city}-{loc}-{seg}-{dev}.wav"
                        tree.audio(rel)
                        device_of[rel] = dev
                        meta.append(f"{rel}\t{scene}\t{city}-{loc}\t{dev}")
                        if dev in unused:
                            continue
                        if city == "barcelona":
                            train.append(f"{rel}\t{scene}")
                        else:
                            evaluate.append(f"{rel}\t{scene}")
                            test.append(rel)
    tree.write("meta.csv", meta)
    tree.write(f"evaluation_setup/fold1_train.{fold_ext}", train)
    tree.write(f"evaluation_setup/fold1_evaluate.{fold_ext}", evaluate)
    tree.write(f"evaluation_setup/fold1_test.{fold_ext}", test)
    return device_of


@pytest.mark.parametrize("fold_ext", ["csv", "txt"])
def test_dcase2018_1a(make_tree, fold_ext: str):
    tree = make_tree("TUT-urban-acoustic-scenes-2018-development")
    build_tau(tree, devices={0: ("a",), 1: ("a",)}, fold_ext=fold_ext)
    index = read_dataset("dcase2018-1a", tree.root)
    assert len(index.clips) == 16
    assert index.labels == ["airport", "metro_station"]
    assert list(index.folds) == [1]
    assert index.clips[0] == Clip(
        path=tree.root / "audio" / "airport-barcelona-0-0-a.wav",
        label="airport",
        device="a",
        source="barcelona-0",
    )
    split = index.split(1)
    _check_partition(index, split)
    assert len(split.train) == 8 and len(split.test) == 8
    assert {index.clips[i].source for i in split.test} == {"helsinki-0", "helsinki-1"}
    assert all("-barcelona-" in index.clips[i].path.name for i in split.train)
    with pytest.raises(DatasetError, match=r"available folds: 1 "):
        index.split(2)


def test_dcase2018_1b_devices(make_tree):
    tree = make_tree("TUT-urban-acoustic-scenes-2018-mobile-development")
    device_of = build_tau(tree, devices={0: ("a", "b", "c"), 1: ("a",)})
    index = read_dataset("dcase2018_1B", tree.root)  # name is case / underscore tolerant
    assert index.name == "dcase2018-1b"
    assert len(index.clips) == 32
    assert Counter(c.device for c in index.clips) == {"a": 16, "b": 8, "c": 8}
    for clip in index.clips:
        assert clip.device == device_of[f"audio/{clip.path.name}"]
    split = index.split(1)
    assert Counter(index.clips[i].device for i in split.test) == {"a": 8, "b": 4, "c": 4}

    mobile = read_dataset("dcase2018-1b", tree.root, devices=["b", "c"])
    assert len(mobile.clips) == 16
    assert {c.device for c in mobile.clips} == {"b", "c"}
    assert len(mobile.split(1).train) == 8 and len(mobile.split(1).test) == 8
    for i in mobile.split(1).test:
        assert "-helsinki-" in mobile.clips[i].path.name
    assert mobile.split(None).train == tuple(range(16))


def test_tau2020_unused_clips_and_tau2022_alias(make_tree):
    tree = make_tree("TAU-urban-acoustic-scenes-2020-mobile-development")
    devices = {0: ("a", "b", "c", "s1", "s4"), 1: ("a", "s2", "s3", "s5", "s6")}
    build_tau(tree, devices=devices, unused=("s6",))
    index = read_dataset("tau2020", tree.root)
    assert len(index.clips) == 80
    assert Counter(c.device for c in index.clips) == {
        d: 16 if d == "a" else 8 for d in ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
    }
    split = index.split(1)
    _check_partition(index, split)
    used = set(split.train) | set(split.test)
    assert {index.clips[i].device for i in range(80) if i not in used} == {"s6"}
    assert len(used) == 72
    assert len(index.split(None).train) == 80
    assert read_dataset("tau2022", tree.root).folds == index.folds


def test_tau_evaluation_root_derives_location_and_device_from_names(make_tree):
    dev = make_tree("TAU-urban-acoustic-scenes-2020-mobile-development")
    build_tau(dev, devices={0: ("a",), 1: ("a",)})
    ev = make_tree("TAU-urban-acoustic-scenes-2020-mobile-evaluation")
    names = ["audio/tram-lyon-1043-42800-s7.wav", "audio/park-paris-2-11-d.wav"]
    for name in names:
        ev.audio(name)
    ev.write("meta.csv", ["filename\tscene_label", f"{names[0]}\ttram", f"{names[1]}\tpark"])
    index = read_dataset("tau2020", dev.root, evaluation_root=ev.root)
    assert index.split(EVAL_FOLD) == Split(train=tuple(range(16)), test=(16, 17))
    assert index.clips[16:] == [
        Clip(path=ev.root / names[0], label="tram", device="s7", source="lyon-1043"),
        Clip(path=ev.root / names[1], label="park", device="d", source="paris-2"),
    ]
    assert index.labels == ["airport", "metro_station", "park", "tram"]


def test_fold_lists_may_name_files_without_the_audio_folder(make_tree):
    tree = make_tree("tau")
    build_tau(tree, devices={0: ("a",), 1: ("a",)})
    reference = read_dataset("dcase2018-1a", tree.root).folds
    train = tree.root / "evaluation_setup" / "fold1_train.csv"
    train.write_text(train.read_text().replace("audio/", ""), encoding="utf-8")
    assert read_dataset("dcase2018-1a", tree.root).folds == reference


def test_tau_meta_with_wrong_column_count(make_tree):
    tree = make_tree("tau")
    build_tau(tree, devices={0: ("a",), 1: ("a",)})
    tree.replace_line("meta.csv", 4, "audio/airport-barcelona-1-0-a.wav\tairport\tbarcelona-1")
    with pytest.raises(DatasetError, match="expected 4") as info:
        read_dataset("tau2020", tree.root)
    assert f"{tree.root / 'meta.csv'}:4:" in str(info.value)


def test_tau_meta_without_required_header(make_tree):
    tree = make_tree("tau")
    build_tau(tree, devices={0: ("a",), 1: ("a",)})
    tree.replace_line("meta.csv", 1, "file\tscene\tidentifier\tsource_label")
    with pytest.raises(DatasetError, match="filename, scene_label") as info:
        read_dataset("dcase2018-1a", tree.root)
    assert "meta.csv:1:" in str(info.value)


def test_tau_unknown_label_in_evaluate_list(make_tree):
    tree = make_tree("tau")
    build_tau(tree, devices={0: ("a",), 1: ("a",)})
    tree.replace_line(
        "evaluation_setup/fold1_evaluate.csv", 2, "audio/airport-helsinki-0-0-a.wav\tbeach"
    )
    with pytest.raises(DatasetError, match="'beach'") as info:
        read_dataset("dcase2018-1a", tree.root)
    assert "fold1_evaluate.csv:2:" in str(info.value)


# LITIS Rouen ---------------------------------------------------------------------------

LITIS_FILES = [  # (example id, file name): label = leading non-digit part of the name
    (1, "avion1.wav"),
    (2, "avion2.wav"),
    (3, "bus1.wav"),
    (4, "bus2.wav"),
    (5, "busystreet1.wav"),
    (6, "busystreet2.wav"),
    (7, "metro-paris1.wav"),
    (8, "metro-paris2.wav"),
]
LITIS_TEST = [[1, 3, 5, 7], [2, 4, 6, 8], [1, 4, 6, 7]]


def _matlab_ascii(rows: list[list[int]]) -> list[str]:
    return ["".join(f"   {float(v):.7e}" for v in row) for row in rows]


def build_litis(tree: Tree, *, transpose: bool = False) -> None:
    for _, name in LITIS_FILES:
        tree.audio(f"data_rouen/{name}")
    tree.write("relation_wav_examples.txt", [f"{name}\t {i}" for i, name in LITIS_FILES])
    learn = [[i for i in range(1, 9) if i not in test] for test in LITIS_TEST]
    if transpose:
        learn_rows = [list(col) for col in zip(*learn, strict=True)]
        test_rows = [list(col) for col in zip(*LITIS_TEST, strict=True)]
    else:
        learn_rows, test_rows = learn, LITIS_TEST
    tree.write("fold3026-matrices_Learn.txt", _matlab_ascii(learn_rows))
    tree.write("fold3026-matrices_Test.txt", _matlab_ascii(test_rows))


def test_litis_splits(make_tree):
    tree = make_tree("litis")
    build_litis(tree)
    index = read_dataset("litis", tree.root)
    assert [c.path.name for c in index.clips] == [name for _, name in LITIS_FILES]
    assert index.clips[0].path == tree.root / "data_rouen" / "avion1.wav"
    assert index.labels == ["avion", "bus", "busystreet", "metro-paris"]
    assert sorted(index.folds) == [1, 2, 3]
    for k, test in enumerate(LITIS_TEST, 1):
        split = index.split(k)
        _check_partition(index, split)
        assert split.test == tuple(i - 1 for i in test)
        assert len(split.train) == 4
    # the same splits stored one per column read identically
    other = make_tree("litis-columns")
    build_litis(other, transpose=True)
    assert read_dataset("litis", other.root).folds == index.folds


def test_litis_unknown_example_id(make_tree):
    tree = make_tree("litis")
    build_litis(tree)
    tree.replace_line("fold3026-matrices_Test.txt", 2, "   2.0000000e+00   9.0000000e+00")
    with pytest.raises(DatasetError, match="example id 9") as info:
        read_dataset("litis", tree.root)
    assert f"{tree.root / 'fold3026-matrices_Test.txt'}:2:" in str(info.value)


def test_litis_missing_split_file_and_malformed_relation(make_tree):
    tree = make_tree("litis")
    build_litis(tree)
    (tree.root / "fold3026-matrices_Learn.txt").unlink()
    with pytest.raises(DatasetError, match=r"fold3026-matrices_Learn\.txt"):
        read_dataset("litis", tree.root)
    build_litis(make_tree("litis2"))
    tree2 = tree.root.parent / "litis2"
    rel = tree2 / "relation_wav_examples.txt"
    rel.write_text(rel.read_text().replace("bus2.wav\t 4", "bus2.wav"), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"relation_wav_examples.txt:4:"):
        read_dataset("litis", tree2)


def test_litis_audio_only_has_no_folds(make_tree):
    tree = make_tree("data_rouen_only")
    for _, name in LITIS_FILES:
        tree.audio(name)
    index = read_dataset("litis", tree.root)
    assert len(index.clips) == 8
    assert index.labels == ["avion", "bus", "busystreet", "metro-paris"]
    assert index.folds == {}
    assert len(index.split(None).train) == 8
    with pytest.raises(DatasetError, match="available folds: none"):
        index.split(1)


# ESC-50 --------------------------------------------------------------------------------

ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take"


def build_esc50(tree: Tree) -> None:
    """Per fold: a dog and a rain clip (ESC-10) and a door knock (not ESC-10)."""
    rows = [ESC50_HEADER]
    for fold in range(1, 6):
        for src, take, target, category, esc10 in [
            (100 + fold, "A", 0, "dog", "True"),
            (200 + fold, "B", 10, "rain", "True"),
            (300 + fold, "A", 30, "door_wood_knock", "False"),
        ]:
            name = f"{fold}-{src}-{take}-{target}.wav"
            tree.audio(f"audio/{name}")
            rows.append(f"{name},{fold},{target},{category},{esc10},{src},{take}")
    tree.write("meta/esc50.csv", rows)


def test_esc50_folds_and_esc10_filter(make_tree):
    tree = make_tree("ESC-50-master")
    build_esc50(tree)
    index = read_dataset("esc50", tree.root)
    assert len(index.clips) == 15
    assert index.labels == ["dog", "door_wood_knock", "rain"]
    assert index.clips[0] == Clip(
        path=tree.root / "audio" / "1-101-A-0.wav", label="dog", source="101"
    )
    assert sorted(index.folds) == [1, 2, 3, 4, 5]
    for k in range(1, 6):
        split = index.split(k)
        _check_partition(index, split)
        assert len(split.test) == 3 and len(split.train) == 12
        assert all(index.clips[i].path.name.startswith(f"{k}-") for i in split.test)

    esc10 = read_dataset("esc50", tree.root, esc10=True)
    assert len(esc10.clips) == 10
    assert esc10.labels == ["dog", "rain"]
    for k in range(1, 6):
        assert _names(esc10, esc10.split(k).test) == {
            f"{k}-{100 + k}-A-0.wav",
            f"{k}-{200 + k}-B-10.wav",
        }
        assert len(esc10.split(k).train) == 8


def test_esc50_errors(make_tree):
    tree = make_tree("ESC-50-master")
    build_esc50(tree)
    tree.replace_line("meta/esc50.csv", 5, "1-999-A-0.wav,1,0,dog,maybe,999,A")
    with pytest.raises(DatasetError, match=r"esc50\.csv:5:.*maybe"):
        read_dataset("esc50", tree.root, esc10=True)
    tree.replace_line("meta/esc50.csv", 5, "2-102-A-0.wav,two,0,dog,True,102,A")
    with pytest.raises(DatasetError, match=r"esc50\.csv:5:.*'two'"):
        read_dataset("esc50", tree.root)
    (tree.root / "meta" / "esc50.csv").unlink()
    with pytest.raises(DatasetError) as info:
        read_dataset("esc50", tree.root)
    assert str(tree.root / "meta" / "esc50.csv") in str(info.value)


# Generic CSV manifest --------------------------------------------------------------------


def test_csv_on_the_real_esc10_manifest(shared_data: Path, esc10_rows: list[dict[str, str]]):
    folder = shared_data / "esc10"
    index = read_dataset("csv", folder)
    classes = (folder / "classes.txt").read_text().split()
    assert len(index.clips) == 320
    assert index.labels == classes and len(classes) == 10
    assert index.root == folder
    assert sorted(index.folds) == [1, 2, 3, 4]
    for k in range(1, 5):
        split = index.split(k)
        _check_partition(index, split)
        assert len(split.test) == 80 and len(split.train) == 240
        assert Counter(index.clips[i].label for i in split.test) == dict.fromkeys(classes, 8)
        assert all(index.clips[i].path.name.startswith(f"{k}-") for i in split.test)
    assert [c.path for c in index.clips] == [folder / r["filename"] for r in esc10_rows]
    assert index.clips[0].source == esc10_rows[0]["source_id"]
    assert all(c.path.is_file() for c in index.clips)
    assert read_dataset("csv", folder / "manifest.csv").folds == index.folds

    scene = read_dataset("csv", folder, manifest="manifest_scene_like.csv")
    assert len(scene.clips) == 192
    assert scene.labels == (folder / "classes_scene_like.txt").read_text().split()
    assert [len(scene.split(k).test) for k in range(1, 5)] == [48, 48, 48, 48]


def test_csv_without_fold_column_generates_folds(make_tree):
    tree = make_tree("manifest")
    rows = ["label,filename,device,notes"]
    for label in ("rain", "wind"):
        for n in range(6):
            rel = f"clips/{label}_{n}.flac"
            tree.audio(rel)
            rows.append(f'{label},{rel},{"ab"[n % 2]},"free text, with a comma"')
    tree.write("manifest.csv", rows)
    index = read_dataset("csv", tree.root, n_folds=3)
    assert len(index.clips) == 12
    assert index.clips[1] == Clip(
        path=tree.root / "clips" / "rain_1.flac", label="rain", device="b"
    )
    assert sorted(index.folds) == [1, 2, 3]
    seen: list[int] = []
    for k in range(1, 4):
        split = index.split(k)
        _check_partition(index, split)
        assert Counter(index.clips[i].label for i in split.test) == {"rain": 2, "wind": 2}
        seen += split.test
    assert sorted(seen) == list(range(12))
    assert read_dataset("csv", tree.root / "manifest.csv", n_folds=3).folds == index.folds


def test_csv_errors(make_tree):
    tree = make_tree("manifest")
    tree.audio("a.wav")
    tree.audio("b.wav")
    tree.write("manifest.csv", ["filename,label,fold", "a.wav,rain,1", "b.wav,wind"])
    with pytest.raises(DatasetError, match="expected 3 columns") as info:
        read_dataset("csv", tree.root)
    assert f"{tree.root / 'manifest.csv'}:3:" in str(info.value)

    tree.write("manifest.csv", ["filename,label,fold", "a.wav,rain,1", "b.wav,wind,x"])
    with pytest.raises(DatasetError, match=r"manifest.csv:3: fold 'x'"):
        read_dataset("csv", tree.root)

    tree.write("manifest.csv", ["filename,label,fold", "a.wav,rain,1", "c.wav,wind,2"])
    with pytest.raises(DatasetError) as info:
        read_dataset("csv", tree.root)
    assert str(tree.root / "c.wav") in str(info.value) and "manifest.csv:3:" in str(info.value)

    tree.write("list.csv", ["path,label", "a.wav,rain"])
    with pytest.raises(DatasetError, match="filename"):
        read_dataset("csv", tree.root / "list.csv")
    (tree.root / "manifest.csv").unlink()
    with pytest.raises(DatasetError) as info:
        read_dataset("csv", tree.root)
    assert str(tree.root / "manifest.csv") in str(info.value)


# Class folders -------------------------------------------------------------------------


def build_folder(tree: Tree, classes: dict[str, int]) -> None:
    for label, count in classes.items():
        for n in range(count):
            ext = [".wav", ".WAV", ".Flac", ".ogg"][n % 4]
            sub = "takes/" if n % 3 == 0 else ""
            tree.audio(f"{label}/{sub}{label}-{n:02d}{ext}")
    tree.write("dog/notes.txt", ["not audio"])
    tree.audio("dog/.hidden.wav")
    tree.audio("stray.wav")  # not in a class folder


def test_folder_reader_stratified_and_deterministic(make_tree):
    tree = make_tree("classes")
    build_folder(tree, {"dog": 7, "rain": 7, "sea_waves": 5})
    index = read_dataset("folder", tree.root, n_folds=3)
    assert len(index.clips) == 19
    assert index.labels == ["dog", "rain", "sea_waves"]
    assert index.clips[0].path == tree.root / "dog" / "dog-01.WAV"
    assert [c.path.relative_to(tree.root).as_posix() for c in index.clips] == sorted(
        c.path.relative_to(tree.root).as_posix() for c in index.clips
    )
    assert sorted(index.folds) == [1, 2, 3]
    tested: list[int] = []
    for label, total in [("dog", 7), ("rain", 7), ("sea_waves", 5)]:
        per_fold = [
            sum(index.clips[i].label == label for i in index.split(k).test) for k in (1, 2, 3)
        ]
        assert sum(per_fold) == total
        assert max(per_fold) - min(per_fold) <= 1  # stratified
    for k in (1, 2, 3):
        _check_partition(index, index.split(k))
        tested += index.split(k).test
    assert sorted(tested) == list(range(19))

    # same tree built in another order -> same folds
    other = make_tree("classes-again")
    build_folder(other, {"sea_waves": 5, "rain": 7, "dog": 7})
    again = read_dataset("folder", other.root, n_folds=3)
    assert again.folds == index.folds

    # a new file in one class leaves the other classes' folds alone
    def fold_of(idx: DatasetIndex) -> dict[str, int]:
        return {
            idx.clips[i].path.relative_to(idx.root).as_posix(): k
            for k in idx.folds
            for i in idx.split(k).test
        }

    before = fold_of(index)
    tree.audio("sea_waves/sea_waves-99.wav")
    after = fold_of(read_dataset("folder", tree.root, n_folds=3))
    assert len(after) == 20
    for rel, k in before.items():
        if not rel.startswith("sea_waves/"):
            assert after[rel] == k


def test_folder_reader_errors(tmp_path: Path, make_tree):
    tree = make_tree("classes")
    build_folder(tree, {"dog": 3})
    with pytest.raises(DatasetError, match="n_folds"):
        read_dataset("folder", tree.root, n_folds=1)
    empty = tmp_path / "empty" / "dog"
    empty.mkdir(parents=True)
    with pytest.raises(DatasetError, match="no audio files") as info:
        read_dataset("folder", empty.parent)
    assert str(empty.parent) in str(info.value)


# Entry point -----------------------------------------------------------------------------


def test_unknown_dataset_name_lists_valid_names(tmp_path: Path):
    with pytest.raises(DatasetError) as info:
        read_dataset("urbansound8k", tmp_path)
    message = str(info.value)
    assert "urbansound8k" in message
    for name in DATASETS:
        assert name in message


def test_missing_root_and_unknown_option(tmp_path: Path):
    missing = tmp_path / "nowhere"
    for name in DATASETS:
        with pytest.raises(DatasetError) as info:
            read_dataset(name, missing)
        assert str(missing) in str(info.value)
    with pytest.raises(DatasetError, match=r"unknown option.*esc11.*accepted: esc10"):
        read_dataset("esc50", tmp_path, esc11=True)
