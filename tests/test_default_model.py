"""The default model shipped in the package: verified on load, right on real recordings."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edge_asc.bundle import load_bundle
from edge_asc.cli import app, default_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXPECTED = {
    "1-17367-A-10.flac": "rain",
    "2-125966-A-11.flac": "sea_waves",
    "1-172649-A-40.flac": "helicopter",
    "1-17808-A-12.flac": "crackling_fire",
    "1-116765-A-41.flac": "chainsaw",
}


def test_shipped_bundle_loads_with_verified_checksums() -> None:
    bundle = load_bundle(default_model())  # checks schema and every member's SHA-256
    assert len(bundle.labels) == 11 and {"rain", "unknown"} <= set(bundle.labels)
    assert set(bundle.models) == {"logmel", "cqt"}
    assert bundle.quantization == "int8" and bundle.default_fusion == "prod"
    assert default_model().stat().st_size < 15e6


def test_shipped_bundle_stores_its_fitted_open_set_threshold() -> None:
    """The threshold the model card reports, fitted for the fusion rule the bundle uses."""
    bundle = load_bundle(default_model())
    fitted = bundle.spec.open_set if bundle.spec is not None else None
    assert fitted is not None and fitted.threshold == 0.992
    assert fitted.evidence == "vs_unknown"  # the best class against the background class
    assert fitted.fitted["fusion"] == bundle.default_fusion


def test_classify_examples_with_the_default_model() -> None:
    result = CliRunner().invoke(app, ["classify", str(EXAMPLES), "--format", "json"])
    assert result.exit_code == 0, result.output
    got = {
        Path(line["path"]).name: line["label"]
        for line in map(json.loads, result.stdout.split("\n")[:-1])
    }
    assert got == EXPECTED


def test_default_model_on_other_real_clips(esc10_rows, shared_data: Path) -> None:
    """Real clips beyond the examples (from the training folds: this checks the install, the
    front-end and the runtime agree with training, not generalisation)."""
    from edge_asc.classify import classify_file

    bundle = load_bundle(default_model())
    rows = [r for r in esc10_rows if r["fold"] == "3"][::2]  # 40 clips, four per class
    correct = sum(
        classify_file(shared_data / "esc10" / r["filename"], bundle).label == r["label"]
        for r in rows
    )
    # The shipped model labels 95 % of its training clips right (94 % of fold 3); a front-end
    # or runtime that disagreed with training would fall towards chance (9 %).
    assert correct >= 32, f"{correct}/{len(rows)}"
