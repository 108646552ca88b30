"""Tests for edge_asc.files.atomic_output."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from edge_asc.files import atomic_output


class Boom(Exception):
    pass


def test_success_writes_target_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "features.npy"
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    with atomic_output(target) as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".features.npy.tmp-")
        assert temp.suffix == ".npy"
        assert temp != target
        assert temp.exists()
        assert not target.exists()  # nothing appears under the real name while writing
        np.save(temp, values)  # np.save appends ".npy" unless the name already ends with it
    np.testing.assert_array_equal(np.load(target), values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npy"]


def test_success_replaces_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_output(str(target)) as temp:
        assert target.read_text() == "old"  # still the old file until the block ends
        temp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_failure_keeps_existing_target_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"previous model")
    with pytest.raises(Boom), atomic_output(target) as temp:
        temp.write_bytes(b"half a mod")
        raise Boom
    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_failure_creates_nothing_when_target_is_new(tmp_path: Path) -> None:
    target = tmp_path / "new.npy"
    with pytest.raises(Boom), atomic_output(target) as temp:
        np.save(temp, np.zeros(3))
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_also_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "x.npy"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as temp:
        temp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_failure_after_caller_removed_temp_still_reraises(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    with pytest.raises(Boom), atomic_output(target) as temp:
        temp.unlink()
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_directory_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        with atomic_output(missing / "x.npy"):
            pytest.fail("must not yield when the directory is missing")
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_parent_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(NotADirectoryError), atomic_output(tmp_path / "plain" / "x.npy"):
        pytest.fail("must not yield")


def test_target_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError), atomic_output(tmp_path / "out"):
        pytest.fail("must not yield")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert list((tmp_path / "out").iterdir()) == []


def test_temp_names_are_unique(tmp_path: Path) -> None:
    target = tmp_path / "x.npy"
    with atomic_output(target) as first, atomic_output(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    # The outer block finishes last, so its content wins; no temp file survives.
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_file_gets_umask_mode_not_private_temp_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "x.npy") as temp:
            temp.write_bytes(b"data")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "x.npy").stat().st_mode) == 0o644


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_replacing_keeps_the_mode_of_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "x.sh"
    target.write_text("old")
    target.chmod(0o750)
    with atomic_output(target) as temp:
        temp.write_text("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
