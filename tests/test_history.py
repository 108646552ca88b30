"""The event history: the store, clips from real audio, retention, privacy, and kill -9.

Clips are the repository's real recordings (``examples/*.flac``); ages and sizes for retention
are constructed by writing events with chosen end times. Crash safety is tested the hard way:
a child process writing events (and a real ``listen``) is killed with SIGKILL, and the
database must open and hold every event that had ended before.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import concat_audio
from typer.testing import CliRunner

from edge_asc.bundle import load_bundle
from edge_asc.cli import app, default_model
from edge_asc.history import AudioRing, EventStore, Retention, StoreError, prune
from edge_asc.history.clips import clip_name, inside, write_clip
from edge_asc.history.store import _MIGRATIONS, SCHEMA_VERSION
from edge_asc.listen import Listener
from edge_asc.sinks.history import ClipSettings, HistorySink
from edge_asc.sources import replay_source

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
RAIN = EXAMPLES / "1-17367-A-10.flac"
FIRE = EXAMPLES / "1-17808-A-12.flac"
runner = CliRunner()


# --- the store -------------------------------------------------------------------------------


def test_schema_is_versioned_and_an_old_file_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    for statement in _MIGRATIONS[1]:
        con.execute(statement)
    con.execute("PRAGMA user_version = 1")
    con.execute(
        "INSERT INTO events (source, label, start_s, end_s, start_time, end_time, peak_score, "
        "mean_score, model, clip) VALUES ('mic', 'rain', 1, 4, 100, 103, 0.9, 0.8, 'm', NULL)"
    )
    con.commit()
    con.close()

    store = EventStore(db)
    assert store.version == SCHEMA_VERSION == 2
    (event,) = store.events()
    assert (event.label, event.clip, event.clip_bytes, event.end_time) == ("rain", None, 0, 103)
    store.add_minute("mic", 1, 10, -30.0, {"rain": 0.5, "quiet": 0.5})
    store.add_minute("mic", 1, 10, -40.0, {"rain": 1.0})  # the same minute after a restart
    (minute,) = store.minutes()
    assert minute["updates"] == 20 and minute["level_dbfs"] == pytest.approx(-35.0)
    assert minute["shares"] == {"quiet": 0.25, "rain": 0.75}
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()

    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(StoreError, match="schema version 99") as info:
        EventStore(db)
    assert "\n" not in str(info.value)
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot be opened"):
        EventStore(tmp_path / "junk.db")


def test_ring_keeps_only_the_last_seconds_by_stream_time() -> None:
    ring = AudioRing(2.0, 100)  # 200 samples
    signal_ = np.arange(1000, dtype=np.float32)
    for start in range(0, 1000, 70):  # blocks that do not divide the ring
        block = signal_[start : start + 70]
        ring.push(block, (start + block.size) / 100)
    assert ring.end_s == 10.0 and ring.start_s == 8.0
    np.testing.assert_array_equal(ring.span(8.5, 9.0), signal_[850:900])
    np.testing.assert_array_equal(ring.span(0.0, 8.2), signal_[800:820])  # older: gone
    assert ring.span(10.0, 12.0).size == 0
    ring.push(np.arange(500, dtype=np.float32), 15.0)  # bigger than the ring
    np.testing.assert_array_equal(ring.span(13.0, 15.0), np.arange(300, 500))
    ring.push(np.ones(50, dtype=np.float32), 20.0)  # after a gap (paused): only the new audio
    assert ring.start_s == 19.5 and ring.span(0, 20).tolist() == [1.0] * 50


# --- retention on real clips -----------------------------------------------------------------


def _clip_event(store: EventStore, folder: Path, label: str, end_time: float, audio) -> int:
    event_id = store.add_event("mic", label, 0.0, 5.0, end_time - 5.0, 0.9, 0.8, "default")
    name = clip_name(event_id, label)
    store.set_clip(event_id, name, write_clip(folder, name, audio, 22050))
    return event_id


def test_retention_by_age_and_disk_oldest_first_keeping_the_last_of_each_label(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    store = EventStore(tmp_path / "events.db")
    now = 1_800_000_000.0
    clips = {p.name: sf.read(p, dtype="float32")[0] for p in sorted(EXAMPLES.glob("*.flac"))}
    audio = list(clips.values())
    ids: dict[str, list[int]] = {"rain": [], "fire": []}
    for day in range(10, 0, -1):  # one rain and one fire event a day, 10 days ago to 1 day ago
        for k, label in enumerate(("rain", "fire")):
            end = now - day * 86400 + k
            ids[label].append(_clip_event(store, folder, label, end, audio[(day + k) % 5]))
    assert len(list(folder.glob("*.flac"))) == 20
    assert all(inside(folder, e.clip) for e in store.events())

    # By age: older than 5 days goes, clips and events, but the last 2 of a label stay.
    result = prune(store, folder, Retention(max_age_days=5.5, max_mb=None, keep_last=2), now)
    assert result["clips_deleted"] == 10 and result["events_deleted"] == 10
    left = {e.id for e in store.events()}
    assert left == set(ids["rain"][5:]) | set(ids["fire"][5:])

    # By disk: under the limit, oldest first, yet the newest 2 of each label always stay.
    sizes = {e.id: e.clip_bytes for e in store.events()}
    assert sum(sizes.values()) == sum(p.stat().st_size for p in folder.glob("*.flac"))
    limit = sum(sizes.values()) * 0.5 / 1e6
    result = prune(store, folder, Retention(max_age_days=None, max_mb=limit, keep_last=2), now)
    assert result["clip_bytes"] <= limit * 1e6
    with_clip = [e for e in store.events(newest_first=False) if e.clip]
    gone = [e for e in store.events(newest_first=False) if not e.clip]
    last_two = set(ids["rain"][-2:]) | set(ids["fire"][-2:])
    others_left = [e for e in with_clip if e.id not in last_two]
    assert gone and all(g.end_time < o.end_time for g in gone for o in others_left)
    assert {e.id for e in with_clip} >= set(ids["rain"][-2:]) | set(ids["fire"][-2:])
    assert sorted(p.name for p in folder.glob("*.flac")) == sorted(e.clip for e in with_clip)
    assert len(store.events()) == 10  # the disk limit deletes clips, never the events

    # Even a limit of 0 keeps the last K; a stray file no event names is removed.
    stray = folder / "stray.flac"
    stray.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    result = prune(store, folder, Retention(max_age_days=None, max_mb=0, keep_last=1), now)
    assert result["orphans_deleted"] == 1 and not stray.exists()
    assert {e.id for e in store.events() if e.clip} == {ids["rain"][-1], ids["fire"][-1]}
    store.close()


# --- the sink on a real listener: events, clips, privacy ------------------------------------


def test_listen_writes_events_and_clips_but_never_the_private_label(tmp_path: Path) -> None:
    audio = concat_audio(tmp_path / "scene.flac", [RAIN, 3.0, FIRE, 3.0])
    bundle = load_bundle(default_model())
    listener = Listener(bundle, max_not_heard_s=1.0)
    settings = ClipSettings(
        folder=tmp_path / "clips", pre_roll=1.0, post_roll=0.5, no_clips_for=("rain",)
    )
    sink = HistorySink(tmp_path / "events.db", "default", listener.sample_rate, settings, 1.0)
    listener.audio_tap = sink.tap
    with sink, listener.source(replay_source(audio)) as source:
        listener.run(source, [sink])
    store = EventStore(tmp_path / "events.db", readonly=True)
    events = store.events(newest_first=False)
    labels = [e.label for e in events]
    assert "rain" in labels and "crackling_fire" in labels
    for event in events:
        assert event.end_s > event.start_s and event.model == "default"
        assert event.end_time - event.start_time == pytest.approx(event.end_s - event.start_s)
        if event.label == "rain":
            assert event.clip is None  # privacy: never written
            continue
        path = inside(tmp_path / "clips", event.clip)
        assert path is not None and event.clip_bytes == path.stat().st_size
        data, rate = sf.read(path)
        assert rate == listener.sample_rate
        expected = event.end_s - event.start_s + 1.0 + 0.5
        assert abs(len(data) / rate - expected) < 0.1
    assert not [p for p in (tmp_path / "clips").iterdir() if "rain" in p.name]
    assert all(not p.name.startswith(".") for p in (tmp_path / "clips").iterdir())  # no temp
    assert store.minutes() and sum(store.minutes()[0]["shares"].values()) == pytest.approx(1, 1e-3)
    store.close()

    # edge-asc events lists and exports them.
    result = runner.invoke(app, ["events", "--db", str(tmp_path / "events.db"), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == labels
    result = runner.invoke(
        app, ["events", "--db", str(tmp_path / "events.db"), "--format", "csv", "--label", "rain"]
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("id,source,label") and all(",rain," in x for x in lines[1:])
    result = runner.invoke(app, ["events", "--db", str(tmp_path / "events.db"), "--since", "1h"])
    assert result.exit_code == 0 and "crackling_fire" in result.stdout
    result = runner.invoke(app, ["events", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(app, ["events", "--db", str(tmp_path / "events.db"), "--since", "soon"])
    assert result.exit_code == 2 and "--since" in result.stderr
    result = runner.invoke(
        app,
        ["events", "--db", str(tmp_path / "events.db"), "--prune",
         "--clips", str(tmp_path / "clips"), "--max-mb", "0", "--keep-last", "0"],
    )  # fmt: skip
    assert result.exit_code == 0 and "pruned 0 events" in result.stderr
    assert not list((tmp_path / "clips").glob("*.flac"))


def test_config_tables_for_events_and_web(tmp_path: Path) -> None:
    from edge_asc.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(
        '[events]\ndb = "e.db"\nno_clips_for = ["speech", "unknown"]\nmax_mb = 50\n'
        'keep_last = 2\npre_roll = 1.5\n[web]\nlisten = "0.0.0.0:8080"\ntoken = "t0ken"\n'
    )
    settings = load_config(path)
    assert settings.events.no_clips_for == ("speech", "unknown")
    assert (settings.events.max_mb, settings.events.keep_last) == (50, 2)
    assert (settings.web.listen, settings.web.token) == ("0.0.0.0:8080", "t0ken")
    path.write_text('[events]\ndb = "e.db"\nmax_mb = -1\n')
    with pytest.raises(ConfigError, match=r"events\.max_mb must be a number above 0"):
        load_config(path)
    path.write_text("[web]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'web\.port'"):
        load_config(path)


# --- kill -9 ---------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys
    from edge_asc.history.store import EventStore
    store = EventStore(sys.argv[1])
    for i in range(1_000_000):
        event_id = store.add_event("mic", "rain", i, i + 1, 1e9 + i, 0.9, 0.8, "m")
        store.add_minute("mic", i // 10, 1, -30.0, {"rain": 1.0})
        print(event_id, flush=True)
    """
)


@pytest.mark.parametrize("after", [1, 37, 150])
def test_sigkill_while_writing_keeps_every_ended_event(tmp_path: Path, after: int) -> None:
    db = tmp_path / "events.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    committed = []
    try:
        for line in proc.stdout:
            committed.append(int(line))
            if len(committed) >= after:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    store = EventStore(db)  # opens (recovering the WAL) and is usable
    stored = {e.id for e in store.events()}
    assert set(committed) <= stored
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def test_sigkill_of_a_real_listen_keeps_the_event_that_had_ended(tmp_path: Path) -> None:
    audio = concat_audio(tmp_path / "scene.flac", [RAIN, 3.0, RAIN, 30.0])
    db = tmp_path / "events.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_asc", "listen", "--input", str(audio), "--realtime",
         "--jsonl", "--events", str(db), "--max-not-heard", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    ended = None
    try:
        for line in proc.stdout:
            data = json.loads(line)
            if data.get("event") == "end":
                ended = data
            elif ended is not None and "event" not in data:
                break  # an update after the end: every output has taken the end
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert ended is not None
    store = EventStore(db)
    (event,) = [e for e in store.events() if e.start_s == pytest.approx(ended["start_s"], abs=1e-3)]
    assert event.label == ended["label"] and event.end_s == pytest.approx(ended["end_s"], abs=1e-3)
    store.close()
