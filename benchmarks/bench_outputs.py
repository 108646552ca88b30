"""The cost of the sensor's network outputs, and a broker outage, measured here.

1. Overhead: the default model on real audio replayed as fast as possible, with no outputs
   and with MQTT (a real Mosquitto on 127.0.0.1) plus Prometheus metrics, in alternating
   rounds of one run; prints the real-time factor of each and their ratio.
2. Outage: a real-time replay with MQTT on; the broker is stopped for ``--outage`` seconds
   and started again; prints dropped audio blocks, messages unsent and whether the sensor
   reconnected.

Run by hand: ``python benchmarks/bench_outputs.py [--seconds 60] [--rounds 3] [--outage 60]``
(needs ``mosquitto`` on PATH or in /usr/sbin).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_asc.audio import load_audio
from edge_asc.bundle import load_bundle
from edge_asc.cli import default_model
from edge_asc.listen import Listener
from edge_asc.sinks.metrics import MetricsSink
from edge_asc.sinks.mqtt import MqttSettings, MqttSink
from edge_asc.sources import replay_source

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(port: int, folder: Path) -> subprocess.Popen:
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def outputs(bundle, port: int) -> tuple[list, MqttSink]:
    mqtt = MqttSink(
        MqttSettings.from_url(f"mqtt://127.0.0.1:{port}", sensor_id="bench"),
        list(bundle.labels), ["bench"], "default",
    )  # fmt: skip
    metrics = MetricsSink("127.0.0.1", 0, "default", "tflite", mqtt=mqtt)
    return [mqtt, metrics], mqtt


class Timed:
    """A sink wrapper that adds up the CPU time its sink's update takes on the worker."""

    def __init__(self, sink) -> None:
        self.sink, self.cpu = sink, 0.0

    def open(self) -> None:
        self.sink.open()

    def update(self, update) -> None:
        start = time.thread_time()
        self.sink.update(update)
        self.cpu += time.thread_time() - start

    def events(self, changes, source) -> None:
        self.sink.events(changes, source)

    def close(self) -> None:
        self.sink.close()


def one_run(bundle, clip: Path, sinks: list, realtime: bool = False) -> tuple[float, Listener]:
    """CPU seconds per audio second of a replay, outputs opened (and connected) beforehand."""
    listener = Listener(bundle)
    for sink in sinks:
        sink.open()
    for sink in sinks:  # steady state: the broker connection is up before timing starts
        mqtt = getattr(sink, "sink", sink)
        for _ in range(100):
            if not isinstance(mqtt, MqttSink) or mqtt.connected:
                break
            time.sleep(0.05)
    source = listener.source(replay_source(clip, realtime=realtime))
    start = time.process_time()
    with source:
        listener.run(source, sinks)
    cpu = time.process_time() - start
    for sink in sinks:
        sink.close()
    return cpu / listener.audio_s, listener


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outage", type=float, default=60.0)
    args = parser.parse_args()
    bundle = load_bundle(default_model())
    folder = Path(tempfile.mkdtemp())
    clips = sorted((REPO / "examples").glob("*.flac"))
    audio = np.concatenate([load_audio(c, 22050) for c in clips])
    audio = np.resize(audio, int(args.seconds * 22050))
    clip = folder / "bench.wav"
    sf.write(clip, audio, 22050, subtype="FLOAT")
    port = free_port()
    broker = start_broker(port, folder)
    try:
        off, on, own = [], [], []
        for _ in range(args.rounds):
            off.append(one_run(bundle, clip, [])[0])
            sinks, mqtt = outputs(bundle, port)
            timed = [Timed(sink) for sink in sinks]
            on.append(one_run(bundle, clip, timed)[0])
            own.append(sum(t.cpu for t in timed) / args.seconds)
        print(
            f"{args.seconds:.0f} s of real audio, default model, {args.rounds} alternating rounds"
        )
        print("| outputs | CPU s per audio s (median) | all rounds |")
        print("|---|---|---|")
        print(f"| none | {np.median(off):.4f} | {', '.join(f'{x:.4f}' for x in off)} |")
        print(f"| MQTT + metrics | {np.median(on):.4f} | {', '.join(f'{x:.4f}' for x in on)} |")
        print(
            f"whole process, side by side: {np.median(on) / np.median(off) - 1:+.1%} "
            f"(noisy: compare the rounds); MQTT published {mqtt.published}"
        )
        print(
            f"the outputs' own work on the worker: {np.median(own):.6f} CPU s per audio s, "
            f"{np.median(own) / np.median(off):+.2%} of the pipeline"
        )

        # The outage: stop the broker during a real-time replay, start it again.
        total = args.outage + 20.0
        outage_audio = np.resize(audio, int(total * 22050))
        sf.write(clip, outage_audio, 22050, subtype="FLOAT")
        sinks, mqtt = outputs(bundle, port)

        def cut() -> None:
            time.sleep(10.0)
            broker.terminate()
            broker.wait()
            time.sleep(args.outage)
            restarted.append(start_broker(port, folder))

        import threading

        restarted: list[subprocess.Popen] = []
        threading.Thread(target=cut, daemon=True).start()
        _, listener = one_run(bundle, clip, sinks, realtime=True)
        print(
            f"outage of {args.outage:.0f} s in {total:.0f} s of real-time audio: "
            f"dropped blocks {listener.last.dropped_blocks}, updates {listener.updates}, "
            f"MQTT sent {mqtt.published}, unsent {mqtt.unsent}, "
            f"reconnected {'yes' if restarted and mqtt.published else 'no'}"
        )
        for process in restarted:
            process.terminate()
    finally:
        if broker.poll() is None:
            broker.terminate()


if __name__ == "__main__":
    main()
