"""`edge-asc listen` and `edge-asc devices`: the live path gives the file path's answers.

The microphone and a replayed file share one queue, worker and engine, so a file replayed
through ``listen`` must give exactly the patch posteriors of ``classify``. The last test
records real audio through PortAudio from a PulseAudio null sink's monitor.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from typer.testing import CliRunner

from edge_asc.audio import load_audio
from edge_asc.bundle import load_bundle
from edge_asc.classify import classify_file
from edge_asc.cli import app
from edge_asc.engine import StreamingClassifier
from edge_asc.listen import Listener
from edge_asc.sources import (
    BlockQueue,
    InputDevice,
    ListenError,
    MicrophoneSource,
    match_device,
    replay_source,
)
from edge_asc.tracker import LabelSmoother

runner = CliRunner()


def _key(result) -> tuple[str, int]:
    return result.kind, result.index


def _jsonl(stdout: str) -> list[dict]:
    """The update lines of `listen --jsonl` (event start/end lines left out)."""
    objects = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [o for o in objects if "event" not in o]


# --- 1. one answer, whichever way the audio arrives -------------------------------------------


def test_replayed_file_gives_the_file_path_answers(tiny_bundle: Path, real_clip_path: Path):
    bundle = load_bundle(tiny_bundle)
    expected = classify_file(real_clip_path, bundle)

    # The CLI, with a window covering the whole clip: the last update is the file's answer.
    args = ["listen", "--model", str(tiny_bundle), "--input", str(real_clip_path), "--jsonl"]
    result = runner.invoke(app, [*args, "--window", "10"])
    assert result.exit_code == 0, result.output
    lines = _jsonl(result.stdout)
    assert len(lines) >= 2 and sum(line["patches"] for line in lines) == expected.patches
    assert lines[-1]["window_label"] == expected.label
    assert lines[-1]["scores"] == expected.scores  # same patches, same fusion: exactly
    assert all(line["label"] in bundle.labels for line in lines)
    assert all(line["dropped_blocks"] == 0 for line in lines)
    assert [line["audio_s"] for line in lines] == sorted(line["audio_s"] for line in lines)
    assert "heard 5.0 s" in result.stderr and "0 dropped blocks" in result.stderr

    # The worker's patches vs the engine fed at random block sizes: identical posteriors.
    listener = Listener(bundle)
    with listener.source(replay_source(real_clip_path)) as source:
        heard = sorted((p for u in listener.updates_from(source) for p in u.patches), key=_key)
    signal_ = load_audio(real_clip_path, 22050)
    engine = StreamingClassifier(bundle)
    rng = np.random.default_rng(11)
    pushed, start = [], 0
    while start < signal_.size:
        size = int(rng.integers(1, 6000))
        pushed.extend(engine.push(signal_[start : start + size]))
        start += size
    pushed.sort(key=_key)
    assert [_key(p) for p in heard] == [_key(p) for p in pushed]
    for a, b in zip(heard, pushed, strict=True):
        np.testing.assert_array_equal(a.probs, b.probs)
    for kind, means in expected.per_spectrogram.items():
        got = np.mean([p.probs for p in heard if p.kind == kind], axis=0)
        np.testing.assert_allclose(got, [means[label] for label in bundle.labels], atol=1e-6)


def test_a_48k_stereo_file_is_resampled_by_the_worker(tiny_bundle: Path, real_clip, tmp_path):
    """Native-rate blocks resampled on the worker side match `classify` bit for bit."""
    data, rate = real_clip
    up = soxr.resample(data, rate, 48000)
    stereo = tmp_path / "stereo48k.wav"
    sf.write(stereo, np.stack([up, 0.5 * up], axis=1), 48000, subtype="FLOAT")
    bundle = load_bundle(tiny_bundle)
    expected = classify_file(stereo, bundle)
    listener = Listener(bundle, window_s=10.0)
    with listener.source(replay_source(stereo)) as source:
        assert source.input_rate == 48000 and source.sample_rate == 22050
        updates = list(listener.updates_from(source))
    assert updates[-1].window_label == expected.label
    assert {k: round(v, 6) for k, v in updates[-1].scores.items()} == expected.scores

    # --duration stops after that much audio (counted in the source's samples).
    cut = runner.invoke(
        app,
        ["listen", "--model", str(tiny_bundle), "--input", str(stereo), "--duration", "3.2"],
    )
    assert cut.exit_code == 0, cut.output
    assert "heard 3.2 s" in cut.stderr
    assert "steady label" in cut.stdout and "dropped 0 blocks" in cut.stdout  # the live view
    assert any(label in cut.stdout for label in bundle.labels)


# --- 2. the queue between the audio thread and the worker -------------------------------------


def test_block_queue_drops_and_counts_instead_of_waiting() -> None:
    blocks = BlockQueue(max_blocks=4)
    sizes = [100, 200, 300, 400, 500, 600, 700]
    taken = [blocks.offer(np.full(n, n, dtype=np.float32)) for n in sizes]
    assert taken == [True] * 4 + [False] * 3
    assert blocks.dropped_blocks == 3 and blocks.dropped_frames == 500 + 600 + 700
    assert [blocks.get().size for _ in range(4)] == [100, 200, 300, 400]  # oldest first
    with pytest.raises(queue.Empty):
        blocks.get(timeout=0.01)
    blocks.close()
    assert blocks.get(timeout=0.01) is None

    # The callback copies: PortAudio reuses its buffer after the callback returns.
    source = MicrophoneSource(0, "fake", 22050.0, 2, stall_s=1.0)

    class Flags:
        input_overflow = False

    buffer = np.zeros((1024, 2), dtype=np.float32)
    for i in range(source.queue.max_blocks + 5):
        buffer[:] = i
        Flags.input_overflow = i == 3
        source._callback(buffer, 1024, None, Flags)
    assert source.queue.dropped_blocks == 5 and source.overflows == 1
    assert source.queue.get()[0, 0] == 0 and source.queue.get()[0, 0] == 1


def test_a_slow_worker_loses_counted_blocks_never_crashes(real_clip_path: Path) -> None:
    """A file paced like a device (20x real time) into a 3-block queue, drained slowly."""
    total = sf.info(real_clip_path).frames
    received = 0
    with replay_source(real_clip_path, realtime=True, speed=20.0, max_blocks=3) as source:
        for block in source.blocks():
            received += block.size
            time.sleep(0.01)  # the worker takes 10 ms a block; the device gives one every 2.3
    dropped = source.queue.dropped_frames
    assert source.queue.dropped_blocks > 10
    assert received + dropped == total  # every frame either arrived or was counted


# --- 3. a steady label --------------------------------------------------------------------------


def test_label_smoother_does_not_flicker_but_follows_a_clear_change() -> None:
    smoother = LabelSmoother(alpha=0.5, margin=0.1, hold=2)
    rng = np.random.default_rng(3)
    labels = []
    for _ in range(30):  # park and street, each slightly ahead half of the time
        lead = rng.uniform(0.0, 0.06) * rng.choice([-1, 1])
        labels.append(smoother.update(np.array([0.45 + lead, 0.45 - lead, 0.10])))
    assert len(set(labels)) == 1
    spike = smoother.update(np.array([0.05, 0.05, 0.90]))  # one loud update is not a scene
    back = smoother.update(np.array([0.45, 0.45, 0.10]))
    assert spike == back == labels[0]
    changed = [smoother.update(np.array([0.05, 0.05, 0.90])) for _ in range(4)]
    assert changed[-1] == 2 and changed.index(2) <= 2


# --- 4. one-line errors ------------------------------------------------------------------------


def test_one_line_errors(tiny_bundle: Path, real_clip_path: Path, tmp_path: Path) -> None:
    base = ["listen", "--model", str(tiny_bundle), "--jsonl"]
    cases = {
        "file not found": [*base, "--input", str(tmp_path / "nowhere.wav")],
        "no 'gam' spectrogram": [*base, "--features", "gam", "--input", str(real_clip_path)],
        "nosuchmic-xyz": [*base, "--device", "nosuchmic-xyz"],
        "cannot be used together": [*base, "--device", "0", "--input", str(real_clip_path)],
        "only applies to --input": [*base, "--realtime"],
        "unknown fusion": [*base, "--fusion", "median", "--input", str(real_clip_path)],
    }
    for needle, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (needle, result.output)
        assert result.stderr.startswith("edge-asc: error: ") and result.stderr.count("\n") == 1
        assert needle in result.stderr or (
            needle == "nosuchmic-xyz" and "PortAudio" in result.stderr
        ), result.stderr
        assert result.stdout == ""


def test_device_names_and_indices() -> None:
    def dev(index: int, name: str, default: bool = False) -> InputDevice:
        return InputDevice(index, name, "ALSA", 2, 48000.0, default)

    devices = [dev(0, "USB Mic"), dev(3, "pulse", True), dev(4, "PulseAudio Monitor"), dev(7, "x")]
    assert match_device(None, devices).index == 3
    assert match_device("4", devices).index == 4 and match_device(7, devices).index == 7
    assert match_device("usb", devices).index == 0
    assert match_device("PULSE", devices).index == 3  # an exact name beats partial matches
    with pytest.raises(ListenError, match=r"ambiguous: it matches 3 'pulse', 4 'PulseAudio"):
        match_device("puls", devices)
    with pytest.raises(ListenError, match=r"no input device matches 'webcam'; .*0 'USB Mic'"):
        match_device("webcam", devices)
    with pytest.raises(ListenError, match="no input device has index 5"):
        match_device("5", devices)
    with pytest.raises(ListenError, match="no default input device"):
        match_device(None, [dev(0, "USB Mic")])
    with pytest.raises(ListenError, match="no input device found"):
        match_device(None, [])


# --- Ctrl-C and real-time pacing, in a real process --------------------------------------------


REALTIME = ("--realtime", "--jsonl")
RECORD = ("--jsonl", "--duration", "6.5", "--window", "10")


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_asc", *args]


def _lines(stream) -> Iterator[str]:
    yield from iter(stream.readline, "")


def test_ctrl_c_ends_a_realtime_replay_cleanly(tiny_bundle: Path, real_clip_path: Path):
    proc = subprocess.Popen(
        _command("listen", "--model", str(tiny_bundle), "--input", str(real_clip_path), *REALTIME),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout = _lines(proc.stdout)
        first, second = json.loads(next(stdout)), json.loads(next(stdout))
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    # Paced by samples: wall time between updates follows the audio time between them.
    assert abs((second["t"] - first["t"]) - (second["audio_s"] - first["audio_s"])) < 0.25
    assert stderr.strip().splitlines()[-1].startswith("edge-asc: heard ")
    assert "Traceback" not in stderr
    assert all(json.loads(line) for line in rest.splitlines())  # no half-written line


# --- 5. a real audio path: PulseAudio null sink -> monitor -> ALSA -> PortAudio --------------

SINK = "edge_asc_test"


def _pactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=20)


@pytest.fixture(scope="session")
def pulse_sink() -> Iterator[str]:
    """A PulseAudio null sink to play into; its monitor is what `listen` records.

    Session-scoped so that, without PulseAudio, the test skips before the model is trained.
    """
    missing = [tool for tool in ("pactl", "paplay") if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"PulseAudio is not installed ({', '.join(missing)} missing): "
            "apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
        )
    started = False
    if _pactl("info").returncode != 0:
        if shutil.which("pulseaudio") is None:
            pytest.skip("no PulseAudio server runs and the pulseaudio daemon is not installed")
        # As root the daemon warns that it is meant for users, and runs all the same.
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], capture_output=True, timeout=30)
        started = True
        for _ in range(50):
            if _pactl("info").returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.skip(f"cannot start a PulseAudio server: {_pactl('info').stderr.strip()}")
    module = None
    if SINK not in _pactl("list", "short", "sinks").stdout:
        loaded = _pactl("load-module", "module-null-sink", f"sink_name={SINK}")
        if loaded.returncode != 0:
            pytest.skip(f"cannot load PulseAudio's null sink: {loaded.stderr.strip()}")
        module = loaded.stdout.strip()
    devices = subprocess.run(_command("devices"), capture_output=True, text=True, timeout=60)
    if devices.returncode != 0:
        pytest.skip(f"PortAudio unusable here: {devices.stderr.strip()}")
    if not any("pulse" in line.split() for line in devices.stdout.splitlines()):
        pytest.skip("PortAudio lists no 'pulse' device: apt-get install libasound2-plugins")
    yield SINK
    if module:
        _pactl("unload-module", module)
    if started:
        subprocess.run(["pulseaudio", "-k"], capture_output=True, timeout=30)


def _record_through_pulse(sink: str, clip: Path, *options: str) -> tuple[int, list[dict], str]:
    """Run `listen --device pulse` on the sink's monitor while ``clip`` plays into the sink."""
    env = {**os.environ, "PULSE_SOURCE": f"{sink}.monitor"}  # leave the default source alone
    proc = subprocess.Popen(
        _command("listen", "--device", "pulse", *RECORD, *options),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out: list[str] = []
    err: list[str] = []
    opened = threading.Event()

    def pump(stream, lines: list[str]) -> None:
        for line in _lines(stream):
            lines.append(line)
            if "listening to" in line:
                opened.set()

    pumps = [
        threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while not opened.wait(0.1) and proc.poll() is None and time.monotonic() < deadline:
            pass
        if opened.is_set():  # the stream is open: play the clip into the sink it records
            subprocess.run(["paplay", f"--device={sink}", str(clip)], check=True, timeout=30)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        for thread in pumps:
            thread.join(timeout=5)
    return proc.returncode, _jsonl("".join(out)), "".join(err)


def test_listen_records_a_real_clip_through_pulseaudio(
    pulse_sink: str, tiny_bundle: Path, real_clip_path: Path
) -> None:
    code, lines, stderr = _record_through_pulse(
        pulse_sink, real_clip_path, "--model", str(tiny_bundle)
    )
    assert code == 0 and lines, stderr
    labels = load_bundle(tiny_bundle).labels
    assert all(line["label"] in labels and line["window_label"] in labels for line in lines)
    levels = [line["level_dbfs"] for line in lines if line["level_dbfs"] is not None]
    assert max(levels) > -40  # the clip was heard, not silence
    assert abs(sum(lines[-1]["scores"].values()) - 1) < 1e-3
    assert "heard 6.5 s of audio from 'pulse'" in stderr


def test_the_default_model_hears_what_classify_reads(pulse_sink: str) -> None:
    """Played, recorded at the sink's monitor and labelled live: the file's own label."""
    from edge_asc.cli import default_model

    if not default_model().is_file():
        pytest.skip("no default model is installed with this edge-asc")
    clip = Path(__file__).parents[1] / "examples" / "1-17367-A-10.flac"  # rain
    expected = classify_file(clip, load_bundle(default_model()))
    code, lines, stderr = _record_through_pulse(pulse_sink, clip)
    assert code == 0 and lines, stderr
    # The last update that heard the clip; under a loaded CPU the recording's tail can be
    # the sink's silence after it (quiet, which ends the window), so not always the last line.
    heard = [line for line in lines if line["decision"] != "quiet"]
    assert heard, lines
    assert heard[-1]["window_label"] == expected.label, (heard[-1], expected.scores)
