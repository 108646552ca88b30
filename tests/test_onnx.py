"""The ONNX path (for TensorRT / CUDA on a Jetson), checked on the CPU against Keras and TFLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_asc.backends import BackendError, open_model
from edge_asc.backends.tflite import TFLiteModel
from edge_asc.bundle import load_bundle
from edge_asc.classify import classify_file
from edge_asc.cli import app

ort = pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime")

# |ONNX - reference| on a probability. Against Keras and float32 TFLite: the same float32
# arithmetic in another order (convolutions, the fused GRU), so 1e-5. Against the int8
# default model: full-integer quantization moves a probability by up to ~0.1 (see
# test_export's TOLERANCE), and a clip score averages such patches.
FLOAT_TOLERANCE = 1e-5
INT8_TOLERANCE = 0.1


@pytest.mark.parametrize("name", ["cdnn", "crnn", "joint"])
def test_every_architecture_matches_keras(name: str) -> None:
    """Random weights and batch-norm statistics, so every layer's translation is exercised."""
    pytest.importorskip("tensorflow", reason="building models needs the [train] extra")
    from edge_asc.backends.onnx import OnnxModel
    from edge_asc.export.onnx_graph import to_onnx
    from edge_asc.train.models import build_model

    rng = np.random.default_rng(11)
    model = build_model(name, 5, width=0.125)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape))
            layer.gamma.assign(rng.normal(1.0, 0.2, size=layer.gamma.shape))
    patches = rng.normal(size=(3, 128, 128)).astype(np.float32)
    expected = model.predict(patches[..., None], verbose=0)
    onnx = OnnxModel(to_onnx(model), threads=1)
    assert onnx.backend == "onnxruntime (CPU)" and not onnx.on_gpu
    np.testing.assert_allclose(onnx.predict(patches), expected, atol=FLOAT_TOLERANCE)


def test_the_gru_is_one_fused_onnx_operator() -> None:
    pytest.importorskip("tensorflow", reason="building models needs the [train] extra")
    import onnx

    from edge_asc.export.onnx_graph import to_onnx
    from edge_asc.train.models import build_model

    graph = onnx.load_from_string(to_onnx(build_model("joint", 3, width=0.0625))).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("GRU") == 1 and "Loop" not in ops and "Scan" not in ops
    (gru,) = [node for node in graph.node if node.op_type == "GRU"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in gru.attribute}
    assert attributes["direction"] == b"bidirectional" and attributes["linear_before_reset"] == 1


def test_bundle_onnx_gives_the_tflite_labels_and_scores(
    tiny_bundle: Path, esc10_rows, shared_data: Path
) -> None:
    """Real clips through the whole runtime on both backends: same labels, same scores."""
    bundle = load_bundle(tiny_bundle)
    assert all(m.onnx_bytes is not None for m in bundle.models.values())
    clips = [shared_data / "esc10" / row["filename"] for row in esc10_rows[:4]]
    for clip in clips:
        tflite = classify_file(clip, bundle, backend="tflite")
        onnx = classify_file(clip, bundle, backend="onnx")
        assert onnx.label == tflite.label
        for kind in bundle.models:
            got, want = onnx.per_spectrogram[kind], tflite.per_spectrogram[kind]
            assert got.keys() == want.keys()
            for label in got:  # scores are rounded to 1e-6 in the result
                assert abs(got[label] - want[label]) <= FLOAT_TOLERANCE + 1e-6


def test_default_model_onnx_agrees_with_int8_tflite(shared_data: Path) -> None:
    from edge_asc.cli import default_model

    bundle = load_bundle(default_model())
    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.flac"))
    assert examples
    for clip in examples:
        tflite = classify_file(clip, bundle, backend="tflite")
        onnx = classify_file(clip, bundle, backend="onnx")
        assert onnx.label == tflite.label, clip.name
        for label, score in onnx.scores.items():
            assert abs(score - tflite.scores[label]) <= INT8_TOLERANCE, (clip.name, label)


def test_auto_is_tflite_without_a_gpu(tiny_bundle: Path) -> None:
    from edge_asc.backends.onnx import gpu_available

    if gpu_available():
        pytest.skip("this machine has a GPU: auto picks ONNX Runtime here")
    member = next(iter(load_bundle(tiny_bundle).models.values()))
    assert isinstance(open_model(member, "auto"), TFLiteModel)


def test_onnx_backend_on_a_bundle_without_onnx_is_one_line(export_tiny_run, tmp_path: Path) -> None:
    out = tmp_path / "no-onnx.easc"
    result = export_tiny_run(out, "float32", "--no-onnx", "--features", "logmel")
    assert result.exit_code == 0, result.output
    member = load_bundle(out).models["logmel"]
    assert member.onnx_bytes is None
    with pytest.raises(BackendError, match="no ONNX model for 'logmel'"):
        open_model(member, "onnx")
    clip = next((Path(__file__).resolve().parents[1] / "examples").glob("*.flac"))
    result = CliRunner().invoke(
        app, ["classify", str(clip), "--model", str(out), "--backend", "onnx"]
    )
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1 and "no ONNX model" in result.stderr, result.stderr


def test_unknown_backend_is_refused(tiny_bundle: Path) -> None:
    member = next(iter(load_bundle(tiny_bundle).models.values()))
    with pytest.raises(BackendError, match="unknown backend"):
        open_model(member, "cuda")
