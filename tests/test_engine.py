"""The engine and the scene tracker on the shipped default bundle (no TensorFlow needed).

listen, classify --timeline and bench share one tracker; these tests prove that the three give
the same labels on the same audio, whatever the block sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_asc.audio import load_audio
from edge_asc.bench import run_bench
from edge_asc.bundle import Bundle, load_bundle
from edge_asc.classify import classify_file
from edge_asc.cli import default_model
from edge_asc.engine import StreamingClassifier
from edge_asc.features import PatchCutter
from edge_asc.listen import Listener
from edge_asc.sources import replay_source
from edge_asc.tracker import SceneTracker

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RAIN, WAVES = EXAMPLES / "1-17367-A-10.flac", EXAMPLES / "2-125966-A-11.flac"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(default_model())


@pytest.fixture(scope="module")
def engine(bundle):
    engine = StreamingClassifier(bundle)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def scene_change(tmp_path_factory) -> Path:
    """Real clips back to back: 5 s of rain, then 10 s of sea waves (22.05 kHz).

    The new scene lasts long enough for the window (3 s) and the smoothing's hysteresis to
    follow it: the shipped model scores the waves clip only 0.52 against 0.21 for rain.
    """
    path = tmp_path_factory.mktemp("engine") / "rain-then-waves.wav"
    waves = load_audio(WAVES, 22050)
    signal = np.concatenate([load_audio(RAIN, 22050), waves, waves])
    sf.write(path, signal, 22050, subtype="FLOAT")
    return path


def test_patch_cutter_matches_cutting_the_whole_spectrogram() -> None:
    rng = np.random.default_rng(0)
    spectrogram = rng.normal(size=(4, 50)).astype(np.float32)
    for hop in (10, 7):
        cutter = PatchCutter(4, width=10, hop=hop)
        got, start = [], 0
        for size in (1, 3, 9, 13, 24):
            got += cutter.push(spectrogram[:, start : start + size])
            start += size
        starts = range(0, 50 - 10 + 1, hop)
        assert [i for i, _ in got] == list(range(len(starts)))
        for (_, patch), first in zip(got, starts, strict=True):
            np.testing.assert_array_equal(patch, spectrogram[:, first : first + 10])
        assert cutter.patches_done == len(starts) and cutter.frames_held < 20
    with pytest.raises(ValueError, match="patch hop"):
        PatchCutter(4, width=10, hop=11)


def test_engine_figures_and_due_order(engine, bundle) -> None:
    engine.reset()
    signal = load_audio(RAIN, engine.sample_rate)
    results = []
    for start in range(0, signal.size, 4096):
        results += engine.push(signal[start : start + 4096])
    assert engine.samples_in == signal.size
    assert set(engine.patches_done) == set(bundle.models)
    assert sum(engine.patches_done.values()) == len(results)
    # Every patch came out once its due sample had arrived, and in due order.
    assert [r.due_sample for r in results] == sorted(r.due_sample for r in results)
    assert all(r.due_sample <= signal.size for r in results)
    # The first patch of every spectrogram needs first_patch_seconds of audio, not more.
    due = {r.kind: r.due_sample for r in results if r.index == 0}
    assert max(due.values()) / engine.sample_rate == pytest.approx(engine.first_patch_seconds)
    assert all(held < 2 * 128 for held in engine.frames_held.values())


def test_spectrograms_wait_until_a_patch_is_due(engine) -> None:
    """Blocks are held until some patch can be complete, then computed in one push: the
    same patches at the same moment as computing every block, whatever the caller does
    with its buffer afterwards."""
    signal = load_audio(RAIN, engine.sample_rate)
    engine.reset()
    expected = engine.push(signal)
    engine.reset()
    first_due = min(r.due_sample for r in expected)
    buffer = np.empty(1000, dtype=np.float32)  # reused for every block, as audio callbacks do
    got = []
    for start in range(0, signal.size, buffer.size):
        block = signal[start : start + buffer.size]
        buffer[: block.size] = block
        new = engine.push(buffer[: block.size])
        if engine.samples_in < first_due:
            assert new == [] and engine.feature_seconds == 0.0  # nothing computed yet
        # a patch comes out in the very push that brings its due sample, not later
        assert all(engine.samples_in - block.size < r.due_sample <= engine.samples_in for r in new)
        got += new
        buffer[:] = np.nan  # the engine must have copied what it holds
    assert [(r.kind, r.index) for r in got] == [(r.kind, r.index) for r in expected]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.probs, b.probs)
        assert a.level_dbfs == b.level_dbfs


def test_reset_engine_repeats_itself(engine) -> None:
    signal = load_audio(WAVES, engine.sample_rate)
    engine.reset()
    first = engine.push(signal)
    engine.reset()
    second = engine.push(signal)
    assert [(r.kind, r.index) for r in first] == [(r.kind, r.index) for r in second]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.probs, b.probs)


def test_tracker_follows_a_scene_change(engine, bundle, scene_change: Path) -> None:
    engine.reset()
    tracker = SceneTracker(bundle.labels, engine.kinds, 3.0, bundle.default_fusion)
    scenes = tracker.add(engine.push(load_audio(scene_change, engine.sample_rate)))
    labels = [s.label for s in scenes]
    assert labels[0] == "rain" and labels[-1] == "sea_waves"
    assert all(s.label in bundle.labels for s in scenes)
    tracker.reset()
    assert tracker.last is None


def _changes(labels_at: list[tuple[float, str]]) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for end, label in labels_at:
        if not out or out[-1][1] != label:
            out.append((round(end, 3), label))
    return out


def test_listen_classify_and_bench_give_the_same_labels(engine, bundle, scene_change: Path) -> None:
    """One tracker for all three: the same label sequence at 1024, 4096 and 65536 samples."""
    timeline = classify_file(scene_change, bundle, window_s=3.0, engine=engine).timeline
    from_classify = [(row["end_s"], row["label"]) for row in timeline]

    listener = Listener(bundle, window_s=3.0)
    with listener.source(replay_source(scene_change)) as source:
        from_listen = [
            (scene.end_s, scene.label)
            for update in listener.updates_from(source)
            for scene in update.scenes
        ]
    signal = load_audio(scene_change, engine.sample_rate)
    report = run_bench(bundle, signal, block=4096, window_s=3.0)
    from_bench = [tuple(change) for change in report["label_changes"]]

    assert len(from_listen) == sum(report["patches"].values())
    ends = [end for end, _ in from_listen]
    last_per_span = [s for i, s in enumerate(from_listen) if ends[i + 1 : i + 2] != [s[0]]]
    assert [(round(t, 3), label) for t, label in last_per_span] == from_classify
    assert _changes(from_listen) == from_bench
    assert from_bench[0][1] == "rain" and from_bench[-1][1] == "sea_waves"


def test_models_share_the_cores_without_oversubscribing(monkeypatch) -> None:
    from edge_asc import engine

    monkeypatch.setattr(engine, "available_cores", lambda: 2)
    assert engine.model_threads(2) == 1  # two models at once: one core each
    assert engine.model_threads(1) == 2
    assert engine.model_threads(3) == 1
    assert engine.model_threads(2, parallel=False) == 2  # one after the other: both cores


def test_onnx_runtime_on_a_cpu_runs_one_model_at_a_time_on_one_thread(bundle) -> None:
    """Measured faster and leaner than worker threads for ONNX Runtime; TFLite keeps them."""
    onnx = StreamingClassifier(bundle, backend="onnx")
    assert onnx._pool is None
    session = next(iter(onnx._spectrograms.values())).model._session
    assert session.get_session_options().intra_op_num_threads == 1
    tflite = StreamingClassifier(bundle, backend="tflite")
    from edge_asc.engine import available_cores

    assert (tflite._pool is not None) == (available_cores() > 1)  # models run side by side
    tflite.close()


def test_auto_backend_follows_the_per_patch_times_the_export_stored() -> None:
    """On a CPU: ONNX Runtime only where the bundle's own measurements say it is faster."""
    import dataclasses

    from edge_asc.backends import choose_backend

    shipped = load_bundle(default_model())
    evaluation = shipped.manifest["evaluation"]

    def measured(onnx_ms: float | None) -> Bundle:
        """The shipped bundle as if its export had measured ONNX at ``onnx_ms`` per patch."""
        changed = {
            key: {**value, "latency_ms_1_thread": onnx_ms} if key.endswith("/onnx") else value
            for key, value in evaluation.items()
        }
        return dataclasses.replace(
            shipped, manifest={**shipped.manifest, "evaluation": {} if onnx_ms is None else changed}
        )

    faster = measured(0.01)
    assert choose_backend(faster) == "onnx"
    assert StreamingClassifier(faster).backend.startswith("onnxruntime")
    for bundle in (measured(1000.0), measured(None)):  # ONNX slower; no measurements at all
        assert choose_backend(bundle) == "tflite"
        assert not StreamingClassifier(bundle).backend.startswith("onnxruntime")


def test_onnx_threads_follow_the_two_thread_times_the_export_stored() -> None:
    """Every core for models the export measured scaling (width 1.0), one for the default."""
    import dataclasses

    from edge_asc.backends import onnx_cpu_threads

    shipped = load_bundle(default_model())
    assert onnx_cpu_threads(shipped, None, cores=2) == 1
    evaluation = shipped.manifest["evaluation"]
    scaling = {
        key: {**value, "latency_ms_2_threads": value["latency_ms_1_thread"] / 2}
        if key.endswith("/onnx")
        else value
        for key, value in evaluation.items()
    }
    bundle = dataclasses.replace(shipped, manifest={**shipped.manifest, "evaluation": scaling})
    assert onnx_cpu_threads(bundle, None, cores=4) == 4
    assert onnx_cpu_threads(bundle, None, cores=1) == 1
    missing = dataclasses.replace(shipped, manifest={**shipped.manifest, "evaluation": {}})
    assert onnx_cpu_threads(missing, None, cores=4) == 1
