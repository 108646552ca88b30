"""Benchmark the event history and the dashboard: their cost to the sensor, and their size.

Two figures, measured in this one run (run it by hand; it is not a test)::

    python benchmarks/bench_history.py [--seconds 60] [--rounds 3] [--hours 24]

1. Real-time factor of the default model: CPU seconds the whole sensor process spends (every
   thread: listener, clip writer, web server) per second of audio, replayed at real speed as a
   microphone would deliver it, with all outputs off against the store, clips and dashboard
   on (one SSE client connected and reading, in another process like a browser), side by
   side: the two set-ups alternate for ``--rounds`` rounds on the same audio (the
   repository's real clips, with silences between them so events start and end and clips are
   written), and the median of each is compared. Target: at most 10 % more. ``--fast``
   replays as fast as the CPU goes instead (wall seconds per audio second), which crowds a
   minute's events, clips and fsyncs into a second or two and so overstates their share.
2. ``--hours`` of simulated history through the store API: a busy sensor, one event every
   10 s and a per-minute summary, and a clip (a real 5 s recording) for every tenth event,
   with retention applied after each clip as ``listen`` does. Targets: the database (after a
   checkpoint) under 5 MB, the clip folder within its limit at every step.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_asc.bundle import load_bundle  # noqa: E402
from edge_asc.cli.common import default_model  # noqa: E402
from edge_asc.history import EventStore, Retention, prune  # noqa: E402
from edge_asc.history.clips import clip_name, write_clip  # noqa: E402
from edge_asc.listen import Listener  # noqa: E402
from edge_asc.sinks.history import ClipSettings, HistorySink  # noqa: E402
from edge_asc.sources import replay_source  # noqa: E402
from edge_asc.web import WebSink  # noqa: E402


def scene(path: Path, seconds: float) -> Path:
    """The real example clips, each followed by 3 s of silence, repeated to ``seconds``."""
    parts, rate, total = [], 22050, 0.0
    clips = sorted((REPO / "examples").glob("*.flac"))
    while total < seconds:
        for clip in clips:
            data, rate = sf.read(clip, dtype="float32")
            parts += [data, np.zeros(3 * rate, dtype=np.float32)]
            total += data.size / rate + 3
    sf.write(path, np.concatenate(parts)[: round(seconds * rate)], rate)
    return path


_CLIENT = """
import json, sys, urllib.request
n = 0
with urllib.request.urlopen(sys.argv[1], timeout=30) as stream:
    for line in stream:
        if line.startswith(b"data: "):
            json.loads(line[6:])
            n += 1
            print(n, flush=True)
"""


def one_run(bundle, audio: Path, folder: Path | None, fast: bool) -> tuple[float, float, dict]:
    """Process ``audio`` once; return (seconds, audio s, details). Outputs on if ``folder``."""
    listener = Listener(bundle, max_not_heard_s=1.0)
    sinks: list = []
    client = None
    if folder is not None:
        history = HistorySink(
            folder / "events.db", "default", listener.sample_rate,
            ClipSettings(folder=folder / "clips"), 1.0,
        )  # fmt: skip
        web = WebSink("127.0.0.1", 0, "default", "litert", listener.sample_rate, [], history)
        sinks = [history, web]
        for sink in sinks:
            sink.open()

        def tap(source, block, end_s):
            history.tap(source, block, end_s)
            web.tap(source, block, end_s)

        listener.audio_tap = tap
        url = f"http://127.0.0.1:{web.port}/api/stream"
        client = subprocess.Popen(
            [sys.executable, "-c", _CLIENT, url], stdout=subprocess.PIPE, text=True
        )
        client.stdout.readline()  # connected and reading before the audio starts
    clock = time.perf_counter if fast else time.process_time
    with listener.source(replay_source(audio, realtime=not fast)) as source:
        started = clock()
        listener.run(source, sinks)
        if folder is not None:
            sinks[0].close()  # the clip writer's work belongs to the run
        spent = clock() - started
    details = {}
    if folder is not None:
        for sink in reversed(sinks):
            sink.close()
        client.terminate()
        messages = client.stdout.read().split()
        details = {
            "events": sinks[0].events_written,
            "clips": sinks[0].clips_written,
            "sse_messages": int(messages[-1]) if messages else 0,
        }
    return spent, listener.audio_s, details


def rtf_side_by_side(seconds: float, rounds: int, fast: bool) -> None:
    bundle = load_bundle(default_model())
    with tempfile.TemporaryDirectory() as tmp:
        audio = scene(Path(tmp) / "scene.flac", seconds)
        off, on, details = [], [], {}
        for r in range(rounds):
            wall, heard, _ = one_run(bundle, audio, None, fast)
            off.append(wall / heard)
            folder = Path(tmp) / f"on{r}"
            folder.mkdir()
            wall, heard, details = one_run(bundle, audio, folder, fast)
            on.append(wall / heard)
            print(f"round {r + 1}: RTF off {off[-1]:.4f}  on {on[-1]:.4f}  {details}")
    mid_off, mid_on = statistics.median(off), statistics.median(on)
    growth = (mid_on / mid_off - 1) * 100
    how = "wall s per audio s, as fast as possible" if fast else "CPU s per audio s, real time"
    print(
        f"real-time factor ({how}), {seconds:.0f} s of audio, median of {rounds}: outputs off "
        f"{mid_off:.4f}, store+clips+dashboard (1 SSE client) {mid_on:.4f}: {growth:+.1f} % "
        f"(best {min(off):.4f} vs {min(on):.4f}; target <= +10 %)"
    )


def day_of_history(hours: float, limit_mb: float) -> None:
    clip, rate = sf.read(REPO / "examples" / "1-17367-A-10.flac", dtype="float32")
    labels = ["rain", "dog", "chainsaw", "crackling_fire", "sea_waves", "helicopter"]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        db, folder = Path(tmp) / "events.db", Path(tmp) / "clips"
        folder.mkdir()
        store = EventStore(db)
        retention = Retention(max_age_days=30, max_mb=limit_mb, keep_last=3)
        start = time.time() - hours * 3600
        biggest, clips, n = 0, 0, int(hours * 360)
        started = time.perf_counter()
        for i in range(n):
            t = start + i * 10
            label = labels[int(rng.integers(len(labels)))]
            length = float(rng.uniform(2, 8))
            event_id = store.add_event(
                "garden", label, i * 10.0, i * 10.0 + length, t, 0.9, 0.7, "default"
            )
            if i % 6 == 5:
                shares = rng.dirichlet(np.ones(4))
                names = [*rng.choice(labels, 2, replace=False), "quiet", "unknown"]
                store.add_minute(
                    "garden", int(t // 60), 40, float(rng.uniform(-60, -20)),
                    {k: float(v) for k, v in zip(names, shares, strict=True)},
                )  # fmt: skip
            if i % 10 == 0:
                name = clip_name(event_id, label)
                store.set_clip(event_id, name, write_clip(folder, name, clip, rate))
                prune(store, folder, retention, now=t)
                clips += 1
                biggest = max(biggest, sum(p.stat().st_size for p in folder.glob("*.flac")))
        elapsed = time.perf_counter() - started
        store.close()
        EventStore(db).compact()
        size = sum(p.stat().st_size for p in Path(tmp).glob("events.db*"))
        print(
            f"{hours:g} h simulated: {n} events, {n // 6} minute rows, {clips} clips written in "
            f"{elapsed:.1f} s; database {size / 1e6:.2f} MB (target < 5 MB); clip folder at most "
            f"{biggest / 1e6:.1f} MB, limit {limit_mb:g} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--clip-mb", type=float, default=20.0)
    parser.add_argument("--fast", action="store_true", help="Replay as fast as possible.")
    args = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"):  # as the CLI runs
        rtf_side_by_side(args.seconds, args.rounds, args.fast)
        day_of_history(args.hours, args.clip_mb)


if __name__ == "__main__":
    main()
