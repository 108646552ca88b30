"""The ``edge-asc`` command line: features command, one-line errors, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from edge_asc.audio import load_audio
from edge_asc.cli import app
from edge_asc.features import FeatureConfig, compute_many, timing

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-asc: error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", [[], ["features"]])
def test_help_everywhere(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_features_npy_matches_library(real_clip_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "cqt.npy"
    result = run("features", real_clip_path, "--kind", "cqt", "--out", out)
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    config = FeatureConfig()
    expected = compute_many(load_audio(real_clip_path, config.sample_rate), "cqt", config)["cqt"]
    assert saved.dtype == np.float32 and saved.shape[0] == 128
    np.testing.assert_array_equal(saved, expected)


def test_stream_block_equals_batch(real_clip_path: Path, tmp_path: Path) -> None:
    batch, streamed = tmp_path / "batch.npz", tmp_path / "stream.npz"
    assert run("features", real_clip_path, "-k", "all", "--out", batch).exit_code == 0
    result = run("features", real_clip_path, "-k", "all", "--stream-block", 997, "--out", streamed)
    assert result.exit_code == 0, result.output
    with np.load(batch) as a, np.load(streamed) as b:
        assert sorted(a.files) == ["cqt", "gam", "logmel", "mfcc", "stft"]
        for kind in a.files:
            np.testing.assert_array_equal(a[kind], b[kind], err_msg=kind)


def test_png_is_drawn(real_clip_path: Path, tmp_path: Path) -> None:
    png = tmp_path / "spec.png"
    result = run("features", real_clip_path, "-k", "logmel,cqt", "--png", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_stereo_other_rate_is_downmixed_and_resampled(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((16000, 2)).astype(np.float32) * 0.1
    wav = tmp_path / "stereo.wav"
    sf.write(wav, stereo, 16000)
    out = tmp_path / "out.npy"
    assert run("features", wav, "--out", out).exit_code == 0
    # 1 s of audio became 44100 mono samples, and the frames that fit in them.
    expected = compute_many(load_audio(wav, 44100), "logmel")["logmel"]
    assert load_audio(wav, 44100).shape == (44100,)
    assert np.load(out).shape == (128, timing("logmel", FeatureConfig()).frames_for(44100))
    np.testing.assert_array_equal(np.load(out), expected)


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio")
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _silent_header_only(path: Path) -> Path:
    sf.write(path, np.zeros((0, 1), dtype=np.float32), 22050)
    return path


def _text(path: Path) -> Path:
    path.write_text("this is not audio\n")
    return path


@pytest.mark.parametrize("make_bad", [_corrupt, _empty, _silent_header_only, _text])
@pytest.mark.parametrize("out_name", ["x.npy", "x.png"])
def test_bad_audio_one_line_error_no_output(tmp_path: Path, make_bad, out_name: str) -> None:
    bad = make_bad(tmp_path / "bad.wav")
    out = tmp_path / out_name
    flag = "--png" if out_name.endswith(".png") else "--out"
    result = run("features", bad, flag, out)
    assert_one_line_error(result, "bad.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.wav"]


def test_truncated_flac_while_streaming_leaves_nothing(real_clip_path: Path, tmp_path: Path):
    data = real_clip_path.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 3])
    result = run("features", cut, "--stream-block", 4096, "--out", tmp_path / "x.npy")
    # libsndfile may read a truncated FLAC to its end or fail part-way: either a clean result
    # or a one-line error, and never a partial output file.
    if result.exit_code != 0:
        assert_one_line_error(result, "cut.flac")
        assert not (tmp_path / "x.npy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(run("features", tmp_path / "nope.wav"), "nope.wav")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--kind", "chroma"], "chroma"),
        (["--out", "x.txt"], ".npy or .npz"),
        (["-k", "logmel,cqt", "--out", "x.npy"], ".npz"),
        (["--preset", "fancy"], "fancy"),
        (["--sample-rate", "5"], "sample"),
    ],
)
def test_bad_options(real_clip_path: Path, tmp_path: Path, args, fragment: str) -> None:
    result = runner.invoke(app, ["features", str(real_clip_path), *args])
    assert_one_line_error(result, fragment)


def test_output_folder_missing_is_one_line(real_clip_path: Path, tmp_path: Path) -> None:
    result = run("features", real_clip_path, "--out", tmp_path / "no" / "such" / "x.npy")
    assert_one_line_error(result)


def test_console_script_module_entry(real_clip_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_asc", "features", str(real_clip_path), "-k", "gam"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gam     128x")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["classify", "examples", "--threads", "2147483648"], "--threads must be from 1 to"),
        (["classify", "examples", "--threads", "0"], "Invalid value for '--threads'"),
        (["classify", "examples", "--window", "inf"], "--window must be"),
        (["listen", "--window", "abc"], "Invalid value for '--window'"),
        (["listen", "--duration", "inf", "--input", "examples/1-17367-A-10.flac"], "--duration"),
        (["bench", "--seconds", "inf"], "--seconds must be"),
        (["classify", "--no-such-option", "x"], "No such option"),
    ],
)
def test_bad_option_values_are_one_line_not_a_usage_box(args: list[str], needle: str) -> None:
    """Through the real entry point (as a user runs it): exit 2, one line, no box or traceback."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "edge_asc", *args],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("edge-asc: error: ")
    assert needle in result.stderr and "Traceback" not in result.stderr and "╭" not in result.stderr
