"""The open-set decision (label, unknown, quiet) and events, on the shipped default model."""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from edge_asc.audio import load_audio
from edge_asc.bundle import OpenSet, load_bundle
from edge_asc.classify import classify_file
from edge_asc.cli import app, default_model
from edge_asc.cli.common import decision_options
from edge_asc.decision import (
    DEFAULT_QUIET_DBFS,
    DEFAULT_THRESHOLD,
    QUIET,
    UNKNOWN,
    DecisionError,
    OpenSetDecision,
    parse_thresholds,
    stored_decision,
)
from edge_asc.events import EventTracker

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RAIN, FIRE = EXAMPLES / "1-17367-A-10.flac", EXAMPLES / "1-17808-A-12.flac"
LABELS = ("dog", "rain")
runner = CliRunner()


def test_level_gate_then_per_label_thresholds() -> None:
    decision = OpenSetDecision(LABELS, quiet_dbfs=-50.0, threshold=0.5, per_label={"dog": 0.8})
    assert decision.decide("rain", 0.99, -math.inf) == QUIET  # digital silence, always
    assert decision.decide("rain", 0.99, -60.0) == QUIET
    assert decision.decide("rain", 0.99, float("nan")) == QUIET
    assert decision.decide("rain", 0.6, -20.0) == "rain"
    assert decision.decide("rain", 0.4, -20.0) == UNKNOWN
    assert decision.decide("dog", 0.7, -20.0) == UNKNOWN  # its own, stricter threshold
    assert decision.decide("dog", 0.85, -20.0) == "dog"
    assert parse_thresholds("dog=0.7, rain=0.4") == {"dog": 0.7, "rain": 0.4}
    for bad in ("dog", "dog=x"):
        with pytest.raises(DecisionError, match="thresholds look like"):
            parse_thresholds(bad)
    with pytest.raises(DecisionError, match="unknown label"):
        OpenSetDecision(LABELS, per_label={"parrot": 0.5})
    with pytest.raises(DecisionError, match="between 0 and 1"):
        OpenSetDecision(LABELS, threshold=1.5)
    background = OpenSetDecision(("dog", UNKNOWN), threshold=0.0)
    assert background.decide(UNKNOWN, 0.99, -20.0) == UNKNOWN  # the model's own class
    assert background.decide(UNKNOWN, 0.99, -70.0) == QUIET


def test_evidence_against_the_background_class() -> None:
    """``vs_unknown``: the label's score against the background class's, not its own alone."""
    labels = ("dog", "rain", UNKNOWN)
    decision = OpenSetDecision(labels, threshold=0.9, evidence="vs_unknown")
    unsure = np.array([0.6, 0.1, 0.3])  # dog leads, but the background class is strong
    torn = np.array([0.6, 0.39, 0.01])  # dog or rain, but certainly one of the ten
    assert decision.evidence_for("dog", unsure) == pytest.approx(0.6 / 0.9)
    assert decision.evidence_for("dog", torn) == pytest.approx(0.6 / 0.61)
    assert decision.decide("dog", decision.evidence_for("dog", unsure), -20.0) == UNKNOWN
    assert decision.decide("dog", decision.evidence_for("dog", torn), -20.0) == "dog"
    top = OpenSetDecision(labels, threshold=0.9)  # the label's own score: both unknown
    assert top.evidence_for("dog", torn) == 0.6
    assert top.decide("dog", top.evidence_for("dog", torn), -20.0) == UNKNOWN
    closed = OpenSetDecision(LABELS, evidence="vs_unknown")  # no background class
    assert closed.evidence_for("rain", np.array([0.2, 0.8])) == 0.8
    assert decision.evidence_for(UNKNOWN, unsure) == 0.3
    with pytest.raises(DecisionError, match="unknown evidence"):
        OpenSetDecision(labels, evidence="energy")


def test_stored_evidence_is_checked_and_loaded() -> None:
    """The bundle says what its thresholds apply to; an old one means the label's score."""
    from edge_asc.bundle.common import SchemaViolation

    labels = ("dog", UNKNOWN)
    assert OpenSet.from_dict({"threshold": 0.5}, labels).evidence == "top"
    stored = OpenSet.from_dict({"threshold": 0.98, "evidence": "vs_unknown"}, labels)
    assert stored.to_dict()["evidence"] == "vs_unknown"
    with pytest.raises(SchemaViolation, match="evidence"):
        OpenSet.from_dict({"threshold": 0.5, "evidence": "energy"}, labels)
    with pytest.raises(SchemaViolation, match="needs a class 'unknown'"):
        OpenSet.from_dict({"threshold": 0.5, "evidence": "vs_unknown"}, ("dog", "rain"))
    shipped = load_bundle(default_model())
    assert shipped.spec is not None and shipped.spec.open_set is not None
    assert stored_decision(shipped).evidence == shipped.spec.open_set.evidence
    assert decision_options(shipped, None, "0.5").evidence == shipped.spec.open_set.evidence


def test_bundle_thresholds_then_config_then_command_line() -> None:
    """Each layer overrides the one before; a bundle's fitted thresholds are the start."""
    shipped = load_bundle(default_model())
    assert shipped.spec is not None
    bundle = dataclasses.replace(
        shipped, spec=dataclasses.replace(shipped.spec, open_set=OpenSet(0.3, {"dog": 0.8}))
    )
    fitted = decision_options(bundle, None, None)
    assert (fitted.threshold_of("rain"), fitted.threshold_of("dog")) == (0.3, 0.8)
    config = decision_options(bundle, -40.0, None, default=0.6, per_label={"rain": 0.7})
    assert (config.threshold_of("dog"), config.threshold_of("rain")) == (0.6, 0.7)
    assert config.quiet_dbfs == -40.0
    one = decision_options(bundle, None, "0.9", default=0.6, per_label={"rain": 0.7})
    assert one.threshold_of("dog") == one.threshold_of("rain") == 0.9
    some = decision_options(bundle, None, "rain=0.2")
    assert (some.threshold_of("rain"), some.threshold_of("dog")) == (0.2, 0.8)
    assert some.threshold_of("sneezing") == 0.3


def test_a_library_caller_gets_the_bundles_thresholds() -> None:
    """``classify_file`` without a decision answers as the command line without options."""
    shipped = load_bundle(default_model())
    assert shipped.spec is not None
    # No window of this clip scores 1 exactly: a threshold of 1 makes every answer unknown.
    strict = dataclasses.replace(
        shipped, spec=dataclasses.replace(shipped.spec, open_set=OpenSet(1.0))
    )
    assert stored_decision(strict).threshold == 1.0
    result = classify_file(RAIN, strict)
    assert result.label == "rain" and result.decision == UNKNOWN
    assert {row["decision"] for row in result.timeline} == {UNKNOWN}


def _without_thresholds(source: Path, out: Path) -> Path:
    """``source`` as a bundle written before thresholds were stored (schema 2, no open_set)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "manifest.json":
                manifest = json.loads(data)
                manifest.pop("open_set", None)
                manifest["schema_version"] = 2
                data = json.dumps(manifest).encode()
            dst.writestr(item, data)
    return out


def test_a_bundle_without_thresholds_uses_the_documented_defaults(tmp_path: Path) -> None:
    """An older bundle stores no fitted thresholds: 0.5 and -50 dBFS apply."""
    bundle = load_bundle(_without_thresholds(default_model(), tmp_path / "old.easc"))
    assert bundle.spec is not None and bundle.spec.open_set is None
    decision = decision_options(bundle, None, None)
    assert (decision.threshold, decision.quiet_dbfs) == (DEFAULT_THRESHOLD, DEFAULT_QUIET_DBFS)
    assert stored_decision(bundle) == decision
    assert (DEFAULT_THRESHOLD, DEFAULT_QUIET_DBFS) == (0.5, -50.0)
    rain = classify_file(RAIN, bundle, decision=decision)
    assert rain.decision == rain.label == "rain" and rain.level_dbfs > -50
    silence, floor = tmp_path / "silence.wav", tmp_path / "floor.wav"
    sf.write(silence, np.zeros(5 * 22050, dtype=np.float32), 22050)
    noise = np.random.default_rng(0).normal(0, 10 ** (-60 / 20), 5 * 22050)
    sf.write(floor, noise.astype(np.float32), 22050, subtype="FLOAT")
    for path in (silence, floor):
        result = classify_file(path, bundle, decision=decision)
        assert result.decision == QUIET, path
        assert all(row["decision"] == QUIET for row in result.timeline)
        assert result.events == []


def test_per_label_override_from_the_command_line() -> None:
    # rain's evidence on this clip is below 1: a threshold of 1 makes it unknown
    strict = runner.invoke(
        app, ["classify", str(RAIN), "--threshold", "rain=1", "--format", "json"]
    )
    assert strict.exit_code == 0, strict.output
    line = json.loads(strict.stdout)
    assert line["decision"] == UNKNOWN and line["label"] == "rain"
    assert set(line["scores"]) == set(load_bundle(default_model()).labels)  # scores kept
    # What the threshold was held against is in the output too: here rain against unknown.
    rain, background = line["scores"]["rain"], line["scores"][UNKNOWN]
    assert line["evidence"] == pytest.approx(rain / (rain + background), abs=1e-6)
    assert 0.98 <= line["evidence"] < 1  # the bundle's threshold passes it; 1 does not
    bad = runner.invoke(app, ["classify", str(RAIN), "--threshold", "parrot=0.3"])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1


def test_events_on_a_constructed_sequence_of_real_clips(tmp_path: Path) -> None:
    """rain 5 s, silence 10 s, a fire 5 s: two events with the right spans."""
    rain, fire = load_audio(RAIN, 22050), load_audio(FIRE, 22050)
    gap = np.zeros(10 * 22050, dtype=np.float32)
    path = tmp_path / "sequence.wav"
    sf.write(path, np.concatenate([rain, gap, fire]), 22050, subtype="FLOAT")
    result = runner.invoke(
        app, ["classify", str(path), "--events", "--format", "json", "--max-not-heard", "3"]
    )
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)["events"]
    assert [e["label"] for e in events] == ["rain", "crackling_fire"]
    first, second = events
    # Rain is heard until the last patch holding some of it (ends 5.94 s: 128 frames of
    # 11.6 ms), then silence is quiet; the fire comes after the 10 s gap.
    assert 0 < first["start_s"] < first["end_s"] <= 6.0
    assert 15.0 < second["start_s"] <= second["end_s"] <= 20.0
    for event in events:
        assert 0 < event["mean_score"] <= event["peak_score"] <= 1


def test_event_tracker_ends_after_max_not_heard() -> None:
    tracker = EventTracker(max_not_heard_s=2.0)
    assert [c.kind for c in tracker.update(1.0, "dog", 0.9)] == ["start"]
    assert tracker.update(2.0, UNKNOWN, 0.3) == []  # a short dip does not end it
    assert tracker.update(2.5, "dog", 0.7) == []
    ended = tracker.update(4.6, QUIET, 0.0)
    assert [(c.kind, c.event.end_s) for c in ended] == [("end", 2.5)]
    event = ended[0].event
    assert (event.start_s, event.peak_score, event.updates) == (1.0, 0.9, 2)
    assert event.mean_score == pytest.approx(0.8)
    tracker.update(5.0, "rain", 0.6)
    assert [(c.kind, c.event.label, c.event.end_s) for c in tracker.finish()] == [
        ("end", "rain", 5.0)
    ]
