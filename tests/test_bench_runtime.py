"""The runtime benchmark's measuring child: both ways of feeding audio give a full row."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_runtime", REPO / "benchmarks" / "bench_runtime.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("audio", ["streamed", "held"])
def test_a_row_measures_the_default_model_on_example_audio(audio: str) -> None:
    bench = _bench()
    clips = [str(p) for p in sorted((REPO / "examples").glob("*.flac"))]
    bundle = REPO / "edge_asc" / "models" / "default.easc"
    # 12 s: longer than one clip, so the streamed clips wrap around to the next file.
    row = bench.run_child(REPO, bundle, "tflite", 12.0, audio, clips)
    assert isinstance(row, dict), row
    assert row["backend"] == "ai-edge-litert"
    assert 0 < row["features"] < row["rtf"] and 0 < row["models"] < row["rtf"]
    assert row["cpu"] > 0 and row["rss_mb"] > 20
    assert row["first_label_s"] is not None and row["first_label_s"] > 0
    assert row["model_macs_per_s"] > 0
