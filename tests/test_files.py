"""Tests for edge_asc.files.atomic_output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_asc.files import LEGACY_STALE_SECONDS, atomic_output, remove_stale_temps


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


# --- leftovers of writers that were killed --------------------------------------------------


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_temp_name_carries_the_pid(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "x.npy") as temp:
        assert temp.name.startswith(f".x.npy.tmp-{os.getpid()}-")
        assert temp.suffix == ".npy"


@pytest.mark.skipif(os.name != "posix", reason="process ids checked with os.kill(pid, 0)")
def test_leftovers_of_dead_writers_of_the_same_target_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = [
        tmp_path / f".x.npz.tmp-{dead}-0123abcd.npz",
        tmp_path / f".x.npz.tmp-{dead}-0123abcd.npz.logmel.npy",  # a writer's helper file
    ]
    kept = [
        tmp_path / f".x.npz.tmp-{os.getpid()}-0123abcd.npz",  # a writer still running
        tmp_path / f".y.npz.tmp-{dead}-0123abcd.npz",  # another target
        tmp_path / ".x.npz.tmp-0123abcd.npz",  # old-style name, recent: maybe in use
        tmp_path / "x.npz.tmp-1-0123abcd.npz",  # not hidden: not ours
    ]
    for path in stale + kept:
        path.write_bytes(b"x")
    assert sorted(remove_stale_temps(tmp_path / "x.npz")) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)


def test_old_style_leftovers_go_once_they_are_old(tmp_path: Path) -> None:
    old = tmp_path / ".x.npy.tmp-0123abcd.npy"
    old.write_bytes(b"x")
    past = time.time() - LEGACY_STALE_SECONDS - 60
    os.utime(old, (past, past))
    with atomic_output(tmp_path / "x.npy") as temp:
        temp.write_bytes(b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_atomic_output_removes_stale_leftovers_first(tmp_path: Path) -> None:
    leftover = tmp_path / f".x.npy.tmp-{_dead_pid()}-0123abcd.npy"
    leftover.write_bytes(b"106 MB in real life")
    with atomic_output(tmp_path / "x.npy") as temp:
        assert not leftover.exists()
        temp.write_bytes(b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]
