"""Tests for edge_asc.signals: SIGTERM and SIGHUP become an exception that cleanup sees."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from edge_asc.files import atomic_output
from edge_asc.signals import Terminated, graceful_signals

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_raises_terminated_and_atomic_output_cleans_up(
    sig: signal.Signals, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Terminated) as info, graceful_signals():
        with atomic_output(tmp_path / "x.npy") as temp:
            temp.write_bytes(b"half written")
            os.kill(os.getpid(), sig)
            pytest.fail("the signal must interrupt the block")
    assert info.value.code == 128 + sig
    assert info.value.signum == sig
    assert str(info.value) == f"stopped by {sig.name}"
    assert isinstance(info.value, SystemExit) and not isinstance(info.value, Exception)
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == f"edge-asc: stopped by {sig.name}\n"


def test_previous_handlers_come_back() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    with graceful_signals(prog=None):
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in before} == before


def test_quiet_when_prog_is_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Terminated), graceful_signals(prog=None):
        os.kill(os.getpid(), signal.SIGTERM)
    assert capsys.readouterr().err == ""


def test_nothing_happens_without_a_signal(capsys: pytest.CaptureFixture[str]) -> None:
    with graceful_signals():
        value = 1 + 1
    assert value == 2
    assert capsys.readouterr().err == ""


def test_outside_the_main_thread_it_does_nothing() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def worker() -> None:
        with graceful_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]
