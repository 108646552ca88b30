"""The sensor's outputs against real components: a Mosquitto broker, Prometheus scrapes, FFmpeg.

Each test starts what it needs on 127.0.0.1 (ports chosen free at run time), bounds it in
time, and stops it again. `.ci/run` installs mosquitto and ffmpeg from Debian.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from edge_asc.audio import load_audio
from edge_asc.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RAIN, WAVES = EXAMPLES / "1-17367-A-10.flac", EXAMPLES / "2-125966-A-11.flac"
runner = CliRunner()


def _missing(what: str) -> None:
    """Skip for a developer without ``what``; fail in CI, which installs it (.ci/run)."""
    if os.environ.get("EDGE_ASC_REQUIRE_SERVICES"):
        pytest.fail(f"{what} is required here (EDGE_ASC_REQUIRE_SERVICES is set)")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class Broker:
    """A real Mosquitto on a loopback port, which a test can stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        _missing("Mosquitto is not installed: apt-get install mosquitto")
    broker = Broker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


class Subscriber:
    """A paho client that records every message on ``topic`` (retained ones included)."""

    def __init__(self, port: int, topic: str = "#") -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-asc-test")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), message.retain))

    def on(self, suffix: str) -> list[str]:
        with self._lock:
            return [payload for topic, payload, _ in self.messages if topic.endswith(suffix)]

    def wait_for(self, suffix: str, predicate=lambda p: True, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [p for p in self.on(suffix) if predicate(p)]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise TimeoutError(f"no message on *{suffix} within {timeout} s")

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """12 s of real audio: rain, waves, rain (22.05 kHz mono WAV)."""
    path = tmp_path_factory.mktemp("outputs") / "rain-waves-rain.wav"
    rain, waves = load_audio(RAIN, 22050), load_audio(WAVES, 22050)
    sf.write(path, np.concatenate([rain, waves, rain])[: 12 * 22050], 22050, subtype="FLOAT")
    return path


def _listen(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edge_asc", "listen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_mqtt_discovery_state_events_metrics_and_last_will(broker: Broker, long_clip: Path):
    subscriber = Subscriber(broker.port)
    metrics_port = _free_port()
    listen = _listen(
        "--input", str(long_clip), "--realtime", "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
        "--sensor-id", "garden", "--metrics", f"127.0.0.1:{metrics_port}", "--jsonl",
    )  # fmt: skip
    try:
        # Discovery: a device with a scene sensor, a level sensor, an event entity, a switch.
        config = json.loads(subscriber.wait_for("_scene/config"))
        assert config["device"]["identifiers"] == ["edge_asc_garden"]
        assert config["availability_topic"] == "edge-asc/garden/availability"
        assert subscriber.on("_level/config") and subscriber.on("_detection/config")
        event_topics = [t for t, _, _ in subscriber.messages if "/event/garden_" in t]
        event_config = json.loads(subscriber.wait_for(event_topics[0]))
        assert "rain" in event_config["event_types"]
        assert subscriber.wait_for("garden/availability") == "online"
        state = json.loads(subscriber.wait_for("/state", lambda p: '"rain"' in p))
        assert state["decision"] == "rain" and state["level_dbfs"] < 0
        start = json.loads(subscriber.wait_for("/event", lambda p: '"start"' in p))
        assert start["label"] == "rain" and start["event_type"] == "rain"
        # The Home Assistant switch pauses detection, and listen honours it.
        subscriber.client.publish("edge-asc/garden/detection/set", "OFF", qos=1)
        subscriber.wait_for("/state", lambda p: '"paused"' in p, timeout=10)
        assert subscriber.wait_for("garden/detection", lambda p: p == "OFF") == "OFF"
        subscriber.client.publish("edge-asc/garden/detection/set", "ON", qos=1)
        after = subscriber.wait_for("/state", lambda p: '"decision": "rain"' in p, timeout=15)
        assert json.loads(after)["decision"] == "rain"
        # Metrics over real HTTP while it runs.
        _wait_port(metrics_port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            values = _scrape(metrics_port)
            updates = [v for k, v in values.items() if k.startswith("edge_asc_updates_total")]
            if updates and updates[0] >= 3:
                break
            time.sleep(0.2)
        assert updates and updates[0] >= 3
        assert values["edge_asc_mqtt_connected{}"] == 1.0
        assert any(k.startswith("edge_asc_compute_seconds_bucket") for k in values)
        assert any(k.startswith("edge_asc_events_total{label=rain") for k in values)
        assert any(k.startswith("edge_asc_info{backend=") for k in values)
        # Killed without a word: the broker publishes the Last Will.
        os.killpg(listen.pid, signal.SIGKILL)
        listen.wait(timeout=10)
        assert subscriber.wait_for("garden/availability", lambda p: p == "offline") == "offline"
    finally:
        if listen.poll() is None:
            os.killpg(listen.pid, signal.SIGKILL)
        subscriber.stop()


def test_broker_outage_keeps_labels_and_counts_unsent(broker: Broker, long_clip: Path):
    subscriber = Subscriber(broker.port)
    listen = _listen(
        "--input", str(long_clip), "--realtime", "--jsonl",
        "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--sensor-id", "porch",
    )  # fmt: skip
    try:
        subscriber.wait_for("porch/availability", lambda p: p == "online")
        subscriber.wait_for("/state")
        broker.stop()
        time.sleep(3.0)  # labels go on while the broker is away
        broker.start()
        # listen reconnects (back-off starts at 1 s) and says so on the availability topic.
        before = len(subscriber.on("porch/availability"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(subscriber.on("porch/availability")) <= before:
            time.sleep(0.1)
        assert subscriber.on("porch/availability")[-1] == "online"
        out, err = listen.communicate(timeout=60)
    finally:
        if listen.poll() is None:
            os.killpg(listen.pid, signal.SIGKILL)
        subscriber.stop()
    assert listen.returncode == 0, err
    updates = [json.loads(line) for line in out.splitlines() if '"decision"' in line]
    assert updates[-1]["audio_s"] > 11.0  # it never stopped classifying
    assert all(u["dropped_blocks"] == 0 for u in updates)
    summary = err.strip().splitlines()[-1]
    unsent = int(summary.split("MQTT ")[1].split(" sent, ")[1].split(" unsent")[0])
    assert unsent > 0, summary


def test_config_file_drives_listen_and_bad_keys_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "edge-asc.toml"
    config.write_text(
        f"jsonl = true\nwindow = 3.0\nthreshold = 0.3\n[thresholds]\nrain = 0.2\n"
        f'[[sources]]\nname = "kitchen"\ninput = "{RAIN}"\n'
    )
    result = runner.invoke(app, ["listen", "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {line["source"] for line in lines} == {"kitchen"}
    assert lines[0]["decision"] == "rain"
    cases = {
        "unknown key 'windw'": "windw = 3\n",
        "window must be a number of seconds above 0": "window = -1\n",
        "thresholds.rain must be a score from 0 to 1": "[thresholds]\nrain = 2\n",
        "unknown key 'mqtt.port'": '[mqtt]\nurl = "mqtt://127.0.0.1"\nport = 3\n',
        "not valid TOML": "window = \n",
        "threshold for unknown label(s) parrot": "[thresholds]\nparrot = 0.5\n",
    }
    for needle, text in cases.items():
        config.write_text(text)
        bad = runner.invoke(app, ["listen", "--config", str(config), "--input", str(RAIN)])
        assert bad.exit_code == 2, (needle, bad.output)
        assert bad.stderr.count("\n") == 1 and needle in bad.stderr, (needle, bad.stderr)


@pytest.fixture
def ffmpeg_server(tmp_path: Path):
    if shutil.which("ffmpeg") is None:
        _missing("FFmpeg is not installed: apt-get install ffmpeg")
    port = _free_port()
    servers: list[subprocess.Popen] = []

    def serve(clip: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip), "-f", "wav",
             "-listen", "1", f"http://127.0.0.1:{port}/live.wav"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        servers.append(process)
        return process

    yield port, serve
    for process in servers:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_a_stream_gives_the_file_label_and_reconnects(ffmpeg_server, long_clip: Path) -> None:
    port, serve = ffmpeg_server
    first = serve(RAIN)
    url = f"http://127.0.0.1:{port}/live.wav"
    time.sleep(0.5)
    listen = _listen("--input", url, "--jsonl", "--duration", "7")
    try:
        deadline = time.monotonic() + 20
        while first.poll() is None and time.monotonic() < deadline:  # the 5 s clip ends ...
            time.sleep(0.1)
        serve(RAIN)  # ... and the stream comes back: the source reconnects
        out, err = listen.communicate(timeout=60)
    finally:
        if listen.poll() is None:
            os.killpg(listen.pid, signal.SIGKILL)
    assert listen.returncode == 0, err
    updates = [json.loads(line) for line in out.splitlines() if '"decision"' in line]
    assert updates and {u["label"] for u in updates} == {"rain"}
    assert updates[-1]["audio_s"] > 6.0  # audio from the second connection too
    starts = [json.loads(line) for line in out.splitlines() if '"start"' in line]
    assert starts and starts[0]["label"] == "rain"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_listen_stops_on_sigterm_and_sighup_like_on_ctrl_c(long_clip: Path, signum) -> None:
    """How systemd stops it: the summary is printed, open events end, and the exit is 0."""
    listen = _listen("--input", str(long_clip), "--realtime", "--jsonl")
    try:
        assert listen.stdout is not None
        first = listen.stdout.readline()  # an update has been written: it is running
        assert '"decision"' in first
        listen.send_signal(signum)
        out, err = listen.communicate(timeout=30)
    finally:
        if listen.poll() is None:
            os.killpg(listen.pid, signal.SIGKILL)
    assert listen.returncode == 0, err
    assert "heard" in err and "updates" in err and "Traceback" not in err
    assert '"event": "end"' in out  # the open event was ended and written
