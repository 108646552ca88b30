"""`edge-asc classify` and the runtime engine: same spectrograms and posteriors as training."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from edge_asc.audio import load_audio
from edge_asc.backends.tflite import TFLiteModel
from edge_asc.bundle import load_bundle
from edge_asc.classify import classify_file
from edge_asc.cli import app
from edge_asc.engine import StreamingClassifier
from edge_asc.features import compute_many, cut_patches
from edge_asc.tracker import LabelSmoother, SceneWindow

runner = CliRunner()


def test_a_reused_engine_gives_what_fresh_engines_give(
    tiny_bundle: Path, esc10_rows, shared_data: Path
) -> None:
    """`classify` loads the models once and resets the engine between files."""
    bundle = load_bundle(tiny_bundle)
    clips = [shared_data / "esc10" / row["filename"] for row in esc10_rows[:3]]
    engine = StreamingClassifier(bundle)
    for clip in [*clips, clips[0]]:
        reused = classify_file(clip, bundle, engine=engine, window_s=1.0)
        fresh = classify_file(clip, bundle, window_s=1.0)
        assert reused == fresh


def test_runtime_posteriors_equal_the_training_path(tiny_bundle: Path, real_clip_path: Path):
    """Batch spectrogram -> patches (training's way) vs the streaming engine: identical."""
    bundle = load_bundle(tiny_bundle)
    result = classify_file(real_clip_path, bundle)
    for kind, member in bundle.models.items():
        signal = load_audio(real_clip_path, member.features.sample_rate)
        spec = compute_many(signal, kind, member.features)[kind]
        patches = cut_patches(member.norm.apply(spec), 128)
        expected = TFLiteModel(member.model_bytes).predict(patches).mean(axis=0)
        got = np.array([result.per_spectrogram[kind][label] for label in bundle.labels])
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_random_blocks_give_identical_patches(tiny_bundle: Path, real_clip_path: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    signal = load_audio(real_clip_path, 22050)
    whole = StreamingClassifier(bundle).push(signal)
    engine = StreamingClassifier(bundle)
    rng = np.random.default_rng(5)
    pieces, start = [], 0
    while start < signal.size:
        size = int(rng.integers(1, 9000))
        pieces.extend(engine.push(signal[start : start + size]))
        start += size
    key = lambda r: (r.kind, r.index)  # noqa: E731
    assert [key(r) for r in sorted(whole, key=key)] == [key(r) for r in sorted(pieces, key=key)]
    for a, b in zip(sorted(whole, key=key), sorted(pieces, key=key), strict=True):
        np.testing.assert_array_equal(a.probs, b.probs)
        assert a.end_s == b.end_s


def test_memory_stays_flat_on_a_long_stream(tiny_bundle: Path, real_clip: tuple) -> None:
    signal, _ = real_clip
    engine = StreamingClassifier(load_bundle(tiny_bundle))
    for _ in range(8):  # 40 s
        engine.push(signal.astype(np.float32))
    for held in engine.frames_held.values():
        assert held < 2 * 128  # only an unfinished patch is kept


def test_classify_command_json_csv_table_and_failures(tiny_bundle: Path, tmp_path: Path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("1-17367-A-10.flac", "2-125966-A-11.flac"):
        shutil.copy(Path(__file__).parents[1] / "examples" / name, clips / name)
    (tmp_path / "broken.wav").write_bytes(b"RIFF nonsense")
    stereo = tmp_path / "stereo48k.wav"
    data, rate = sf.read(clips / "1-17367-A-10.flac")
    import soxr

    up = soxr.resample(data, rate, 48000)
    sf.write(stereo, np.stack([up, up], axis=1), 48000)

    args = [
        "classify",
        str(clips),
        str(tmp_path / "broken.wav"),
        str(tmp_path / "*.wav"),
        "--model",
        str(tiny_bundle),
        "--format",
        "json",
        "--timeline",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1  # some inputs failed ...
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3  # ... but the others were classified
    labels = set(load_bundle(tiny_bundle).labels)
    for line in lines:
        assert line["label"] in labels and set(line["scores"]) == labels
        assert abs(sum(line["scores"].values()) - 1) < 1e-4
        assert line["timeline"][0]["start_s"] == 0.0
        assert all(w["end_s"] > w["start_s"] for w in line["timeline"])
    assert result.stderr.count("broken.wav") == 2  # named directly and matched by the glob
    mono = next(x for x in lines if x["path"].endswith("1-17367-A-10.flac"))
    resampled = next(x for x in lines if x["path"].endswith("stereo48k.wav"))
    assert resampled["label"] == mono["label"]

    table = runner.invoke(app, ["classify", str(clips), "--model", str(tiny_bundle)])
    assert table.exit_code == 0 and table.stdout.count("\n") == 2
    as_csv = runner.invoke(
        app, ["classify", str(clips), "--model", str(tiny_bundle), "--format", "csv"]
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 2 and set(rows[0]) == {"path", "decision", "label", "score", *labels}


def test_too_short_and_missing_spectrogram(tiny_bundle: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(22050, dtype=np.float32), 22050)
    result = runner.invoke(app, ["classify", str(short), "--model", str(tiny_bundle)])
    assert result.exit_code == 1 and "too short" in result.stderr
    missing = runner.invoke(
        app, ["classify", str(short), "--model", str(tiny_bundle), "--features", "gam"]
    )
    assert missing.exit_code == 2
    assert missing.stderr.count("\n") == 1 and "no 'gam' spectrogram" in missing.stderr


def test_scene_window_keeps_the_last_seconds() -> None:
    from edge_asc.engine import PatchResult

    window = SceneWindow(["logmel"], 2, window_s=3.0, fusion="mean")
    make = lambda end, p: PatchResult("logmel", 0, end - 1.5, end, 0, np.array(p))  # noqa: E731
    window.add([make(1.5, [1.0, 0.0]), make(3.0, [1.0, 0.0])])
    window.add([make(6.0, [0.0, 1.0]), make(7.5, [0.0, 1.0])])
    fused, _ = window.scores()
    np.testing.assert_allclose(fused, [0.0, 1.0])  # patches ending before 4.5 s are gone


def test_label_smoother_has_hysteresis() -> None:
    smoother = LabelSmoother(alpha=0.5, margin=0.1, hold=2)
    close = [np.array([0.52, 0.48]), np.array([0.47, 0.53])] * 5
    labels = [smoother.update(s) for s in close]
    assert set(labels) == {0}  # two close scenes: no flicker
    clear = [smoother.update(np.array([0.1, 0.9])) for _ in range(4)]
    assert clear[-1] == 1 and clear[0] == 0  # a clear change wins after a short hold


def test_a_quiet_gap_ends_the_label_and_its_smoothing() -> None:
    """What the model makes of silence must not hold the label of the sound after it."""
    from edge_asc.engine import PatchResult
    from edge_asc.tracker import SceneTracker

    def patch(end: float, probs: list[float], level: float) -> PatchResult:
        return PatchResult("logmel", 0, end - 1.5, end, 0, np.array(probs), level)

    tracker = SceneTracker(["dog", "rain"], ["logmel"], window_s=3.0, fusion="mean")
    loud = [patch(1.5 * i, [0.1, 0.9], -20.0) for i in (1, 2)]
    silence = [patch(1.5 * i, [0.95, 0.05], -np.inf) for i in (3, 4, 5)]
    after = [patch(1.5 * i, [0.3, 0.7], -25.0) for i in (6, 7)]
    scenes = tracker.add(loud + silence + after)
    assert [s.decision for s in scenes] == ["rain", "rain", *["quiet"] * 3, "rain", "rain"]
    # the silent patches' own scores are shown, and forgotten once the sound is back
    assert scenes[2].label == "dog" and scenes[5].scores["rain"] == pytest.approx(0.7)
