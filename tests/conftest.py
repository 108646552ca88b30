"""Shared fixtures: where the real recordings live, and a few real clips.

The real audio sits in ``../shared/data`` beside the repository (CI always has it).
Tests that need it skip with a clear reason when it is absent; set
``EDGE_ASC_SHARED_DATA`` to point elsewhere.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("EDGE_ASC_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real recordings, or skip the test when it is absent."""
    root = _shared_data_dir()
    if not (root / "esc10" / "manifest.csv").is_file():
        pytest.skip(f"real recordings not found at {root} (set EDGE_ASC_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def esc10_rows(shared_data: Path) -> list[dict[str, str]]:
    """ESC-10 manifest rows (filename, label, fold, ...)."""
    with open(shared_data / "esc10" / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def real_clip_path(shared_data: Path, esc10_rows: list[dict[str, str]]) -> Path:
    """One real 5 s ESC-10 clip (22.05 kHz mono FLAC) with broadband content."""
    row = next(r for r in esc10_rows if r["label"] == "chainsaw")
    return shared_data / "esc10" / row["filename"]


@pytest.fixture(scope="session")
def real_clip(real_clip_path: Path) -> tuple[np.ndarray, int]:
    """The samples of ``real_clip_path`` as float64, with their sample rate."""
    import soundfile as sf

    data, sr = sf.read(real_clip_path, dtype="float64", always_2d=False)
    return data, sr


# --- a tiny real training run, shared by the training and export tests ----------------------


@pytest.fixture(scope="session")
def tiny_manifest(esc10_rows, shared_data: Path, tmp_path_factory) -> Path:
    """Three real ESC-10 classes, three clips of each in folds 1 and 2, as a CSV manifest."""
    folder = tmp_path_factory.mktemp("tiny")
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "fold"])
        for label in ("rain", "dog", "chainsaw"):
            for fold in ("1", "2"):
                rows = [r for r in esc10_rows if r["label"] == label and r["fold"] == fold][:3]
                for row in rows:
                    writer.writerow([shared_data / "esc10" / row["filename"], label, fold])
    return manifest


@pytest.fixture(scope="session")
def tiny_run(tiny_manifest: Path, tmp_path_factory) -> Path:
    """A joint model (width 1/16, 2 epochs) per logmel and cqt, trained by the CLI."""
    pytest.importorskip("tensorflow", reason="the training side needs the [train] extra")
    from typer.testing import CliRunner

    from edge_asc.cli import app

    out = tmp_path_factory.mktemp("runs") / "run"
    args = [
        "train",
        "--dataset",
        "csv",
        "--root",
        str(tiny_manifest),
        "--out",
        str(out),
        "--features",
        "logmel,cqt",
        "--width",
        "0.0625",
        "--epochs",
        "2",
        "--sample-rate",
        "22050",
        "--cache",
        str(out.parent / "cache"),
        "--workers",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cqt+logmel/prod" in result.output  # the paper-shaped table was printed
    return out


@pytest.fixture(scope="session")
def export_tiny_run(tiny_run: Path):
    """``edge-asc export`` of the tiny run through the CLI: ``(out, quantize, *options)``."""
    from typer.testing import CliRunner

    from edge_asc.cli import app

    def export(out: Path, quantize: str, *options: str):
        args = ["export", str(tiny_run), "--out", str(out), "--quantize", quantize]
        args += ["--measure", "float32", "--cache", str(tiny_run.parent / "cache"), *options]
        return CliRunner().invoke(app, args)

    return export


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run: Path) -> Path:
    """The tiny run exported to a float32 bundle (logmel + cqt)."""
    from edge_asc.export.exporter import export_run

    out = tiny_run.parent / "tiny-float32.easc"
    if not out.exists():
        export_run(
            tiny_run,
            out,
            quantize="float32",
            measure=["float32"],
            cache_dir=tiny_run.parent / "cache",
            verbose=False,
        )
    return out


def concat_audio(path: Path, parts: list[Path | float]) -> Path:
    """Real clips (paths) and seconds of silence (floats), one after the other, as one file."""
    import soundfile as sf

    audio, rate = [], 22050
    for part in parts:
        if isinstance(part, Path):
            data, rate = sf.read(part, dtype="float32")
            audio.append(data)
        else:
            audio.append(np.zeros(round(part * rate), dtype=np.float32))
    sf.write(path, np.concatenate(audio), rate)
    return path
