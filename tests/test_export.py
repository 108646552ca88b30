"""Export: builtin-only TFLite in every quantization mode, faithful to Keras, in a bundle."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_asc.backends.tflite import TFLiteModel
from edge_asc.bundle import load_bundle
from edge_asc.cli import app
from edge_asc.features import NormStats

pytest.importorskip("tensorflow", reason="export needs the [train] extra")

# Largest |TFLite - Keras| on a class probability we accept per mode, and why:
# float32 is the same arithmetic in another order; float16 weights keep ~3 significant
# digits; dynamic-range int8 weights give ~1/127 relative error per weight; full int8 also
# quantizes every activation and the softmax output itself to steps of 1/256.
TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "dynamic": 3e-2, "int8": 1e-1}


@pytest.fixture(scope="module")
def keras_and_patches(tiny_run: Path):
    import keras

    from edge_asc.export.convert import export_graph

    model = keras.models.load_model(tiny_run / "logmel" / "model.keras", compile=False)
    graph = export_graph(model)
    rng = np.random.default_rng(0)
    norm = NormStats.from_dict(json.loads((tiny_run / "logmel" / "norm.json").read_text()))
    # Real normalised patches: the run's own cached validation spectrograms.
    from edge_asc.features import FeatureConfig
    from edge_asc.train.cache import FeatureCache

    spec = json.loads((tiny_run / "run.json").read_text())
    cache = FeatureCache(tiny_run.parent / "cache", FeatureConfig.from_dict(spec["features"]))
    clips = json.loads((tiny_run / "validation.json").read_text())
    patches = np.concatenate(
        [norm.apply(cache.load("logmel", Path(c["path"])))[None, :, :128] for c in clips]
    )
    return model, graph, patches[rng.permutation(len(patches))]


def test_export_graph_is_the_trained_model(keras_and_patches) -> None:
    model, graph, patches = keras_and_patches
    a = model.predict(patches[..., None], verbose=0)
    b = graph.predict(patches[..., None], verbose=0)
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
def test_every_mode_is_builtin_only_and_close_to_keras(keras_and_patches, mode: str) -> None:
    from edge_asc.export.convert import to_tflite

    _, graph, patches = keras_and_patches
    flatbuffer = to_tflite(graph, mode, representative=patches)
    tflite = TFLiteModel(flatbuffer, threads=1)
    assert tflite.backend == "ai-edge-litert"
    ops = tflite.op_names()
    assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "WHILE")], ops
    assert "TensorListReserve" not in str(ops)
    expected = graph.predict(patches[..., None], verbose=0)
    got = tflite.predict(patches)
    assert np.max(np.abs(got - expected)) <= TOLERANCE[mode]
    if mode == "int8":
        assert tflite._input["dtype"] == np.int8  # full integer, input included


def test_integer_form_is_the_same_network(keras_and_patches) -> None:
    """Batch norms and average poolings become depthwise convolutions computing the same."""
    import keras

    from edge_asc.export.integer_form import integer_form

    _, graph, patches = keras_and_patches
    rewritten = integer_form(graph)
    kinds = {type(layer).__name__ for layer in rewritten.layers}
    assert "AveragePooling2D" not in kinds
    left = [
        layer.name
        for layer in rewritten.layers
        if isinstance(layer, keras.layers.BatchNormalization) and len(layer.output.shape) == 4
    ]
    assert not left, left
    expected = graph.predict(patches[..., None], verbose=0)
    got = rewritten.predict(patches[..., None], verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_int8_pools_inside_xnnpack(keras_and_patches) -> None:
    """No quantized AVERAGE_POOL_2D: XNNPACK leaves it out, splitting the int8 graph."""
    from edge_asc.export.convert import to_tflite

    _, graph, patches = keras_and_patches
    ops = TFLiteModel(to_tflite(graph, "int8", representative=patches), threads=1).op_names()
    assert "AVERAGE_POOL_2D" not in ops
    assert "DEPTHWISE_CONV_2D" in ops
    for mode in ("float32", "dynamic"):  # these keep the layers XNNPACK runs faster in float
        assert "AVERAGE_POOL_2D" in TFLiteModel(to_tflite(graph, mode), threads=1).op_names()


@pytest.mark.parametrize("taps", [5, 9])
def test_blocked_kernel_computes_the_same_convolution(taps: int) -> None:
    """A wide convolution on 2x2 blocks equals the plain one, on random weights and inputs."""
    import keras

    from edge_asc.export.blocked_conv import blocked_wide_convolutions

    rng = np.random.default_rng(taps)
    inputs = keras.Input((16, 12, 1))
    conv = keras.layers.Conv2D(3, taps, padding="same", activation="relu")
    plain = keras.Model(inputs, conv(inputs))
    plain.set_weights([rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()])
    blocked = blocked_wide_convolutions(plain)
    assert [type(layer).__name__ for layer in blocked.layers][-1] == "BlockedConv2D"
    x = rng.normal(size=(2, 16, 12, 1)).astype("float32")
    np.testing.assert_allclose(blocked(x), plain(x), atol=1e-4)
    three = keras.layers.Conv2D(3, 3, padding="same")  # narrow: its buffer is small, kept
    assert blocked_wide_convolutions(keras.Model(inputs, three(inputs))).layers[-1] is three


def test_blocked_first_convolution_is_exact_in_int8(keras_and_patches, monkeypatch) -> None:
    """The rewrite keeps every int8 output: same products, same per-channel scales."""
    import keras

    import edge_asc.export.convert as convert

    _, graph, patches = keras_and_patches
    assert any(
        type(layer) is keras.layers.Conv2D and layer.kernel_size == (9, 9) for layer in graph.layers
    ), "the tiny run's model should open with the C-DNN's 9x9 convolution"
    blocked = TFLiteModel(convert.to_tflite(graph, "int8", patches), threads=1)
    monkeypatch.setattr(convert, "blocked_wide_convolutions", lambda model: model)
    plain = TFLiteModel(convert.to_tflite(graph, "int8", patches), threads=1)
    assert "TRANSPOSE" in blocked.op_names() and "TRANSPOSE" not in plain.op_names()
    np.testing.assert_array_equal(blocked.predict(patches[:8]), plain.predict(patches[:8]))


def test_unrolled_gru_is_kerass_gru() -> None:
    """The export's step-by-step GRU against Keras's own, on random weights and inputs."""
    import keras

    from edge_asc.export.unrolled_gru import UnrolledBiGRU

    rng = np.random.default_rng(3)
    inputs = keras.Input((12, 5))
    gru = keras.layers.GRU(4, return_sequences=True, unroll=False)
    reference = keras.Model(inputs, keras.layers.Bidirectional(gru)(inputs))
    weights = [rng.normal(size=w.shape).astype("float32") for w in reference.get_weights()]
    reference.set_weights(weights)
    ours = keras.Model(inputs, UnrolledBiGRU(4)(inputs))
    ours.set_weights(weights)
    x = rng.normal(size=(3, 12, 5)).astype("float32")
    expected = reference.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, atol=1e-5)


def test_int8_stores_each_weight_once(keras_and_patches) -> None:
    """No per-step copies of the GRU's bias: they made width-1.0 int8 models 1.6 MB larger."""
    from tensorflow.lite.tools import flatbuffer_utils

    from edge_asc.export.convert import to_tflite

    _, graph, patches = keras_and_patches
    flatbuffer = to_tflite(graph, "int8", representative=patches)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    stored = [b for b in model.buffers if b.data is not None and len(b.data)]
    # One buffer per weight array (biases folded into convolutions and dense layers), plus a
    # few shape and bias constants; the old per-step GRU graph stored ~510 more.
    assert len(stored) <= len(graph.weights) + 16, (len(stored), len(graph.weights))


def test_unknown_mode_and_int8_without_data() -> None:
    from edge_asc.export.convert import ConversionError, to_tflite

    with pytest.raises(ConversionError, match="unknown quantization"):
        to_tflite(None, "int4")
    with pytest.raises(ConversionError, match="representative"):
        to_tflite(object(), "int8", representative=None)


@pytest.fixture(scope="module")
def bundle_path(export_tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "tiny.easc"
    result = export_tiny_run(out, "dynamic")
    assert result.exit_code == 0, result.output
    assert "dynamic*" in result.output and "float32" in result.output
    return out


def test_bundle_describes_itself(bundle_path: Path, tiny_run: Path) -> None:
    bundle = load_bundle(bundle_path)
    spec = json.loads((tiny_run / "run.json").read_text())
    assert bundle.labels == tuple(spec["labels"])
    assert list(bundle.models) == ["logmel", "cqt"]
    assert bundle.quantization == "dynamic" and bundle.default_fusion == "prod"
    for kind, member in bundle.models.items():
        assert member.features.to_dict() == spec["features"]
        stored = json.loads((tiny_run / kind / "norm.json").read_text())
        np.testing.assert_array_equal(member.norm.mean, stored["mean"])
        assert member.info["model"]["params"] > 0 and member.info["model"]["macs_per_patch"] > 0
        assert member.info["accuracy"]["validation_clips"] == 9
        tflite = TFLiteModel(member.model_bytes)
        assert tflite.n_classes == 3
    evaluation = bundle.manifest["evaluation"]
    assert {"logmel/float32", "logmel/dynamic", "cqt/float32", "cqt/dynamic"} <= set(evaluation)
    assert bundle.manifest["provenance"]["dataset"] == "csv"


def test_bundle_stores_a_reference_both_copies_reproduce(bundle_path: Path) -> None:
    from edge_asc.backends.onnx import OnnxModel
    from edge_asc.bundle import verify_member

    bundle = load_bundle(bundle_path)
    assert bundle.manifest["patch"]["frames"] == 128  # from the models' input, not a literal
    for member in bundle.models.values():
        assert member.reference is not None and set(member.reference.outputs) == {"tflite", "onnx"}
        tflite, onnx = TFLiteModel(member.model_bytes), OnnxModel(member.onnx_bytes)
        member.check_model_io(tflite.input_shape, tflite.n_classes)
        member.check_model_io(onnx.input_shape, onnx.n_classes)
        verify_member(member, tflite, onnx)


def test_export_signs_and_stores_fitted_thresholds(export_tiny_run, tmp_path: Path) -> None:
    from edge_asc.bundle import OpenSet, generate_key_pair
    from edge_asc.cli.common import decision_options

    key, public, fingerprint = generate_key_pair(tmp_path / "release.pem")
    fitted = tmp_path / "open_set.json"
    fitted.write_text(json.dumps({"threshold": 0.42, "per_label": {"dog": 0.6}, "method": "m"}))
    out = tmp_path / "signed.easc"
    result = export_tiny_run(
        out, "float32", "--sign", str(key), "--features", "logmel", "--open-set", str(fitted)
    )
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out, trusted_keys=[public])
    assert bundle.signature is not None and bundle.signature.fingerprint == fingerprint
    assert bundle.spec is not None
    assert bundle.spec.open_set == OpenSet(0.42, {"dog": 0.6}, "m", {})
    decision = decision_options(bundle, None, None)  # what classify and listen start from
    assert decision.threshold_of("dog") == 0.6 and decision.threshold_of("rain") == 0.42
    shown = CliRunner().invoke(app, ["info", str(out)])
    assert "unknown threshold: 0.42 (fitted); per label: dog 0.6" in shown.output

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"threshold": 0.5, "per_label": {"parrot": 0.5}}))
    refused = export_tiny_run(tmp_path / "no.easc", "float32", "--open-set", str(bad))
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "parrot" in refused.stderr and not (tmp_path / "no.easc").exists()
    other = tmp_path / "other_rule.json"
    other.write_text(json.dumps({"threshold": 0.5, "fitted": {"fusion": "mean"}}))
    refused = export_tiny_run(tmp_path / "no.easc", "float32", "--open-set", str(other))
    assert refused.exit_code == 2 and "export with --fusion mean" in refused.stderr


def test_info_prints_the_manifest(bundle_path: Path) -> None:
    result = CliRunner().invoke(app, ["info", str(bundle_path)])
    assert result.exit_code == 0, result.output
    for text in ("chainsaw", "logmel", "cqt", "dynamic", "MACs", "KiB", "none fitted"):
        assert text in result.output


def test_info_refuses_a_damaged_bundle_in_one_line(bundle_path: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.easc"
    truncated.write_bytes(bundle_path.read_bytes()[:-200])
    tampered = tmp_path / "tampered.easc"
    with zipfile.ZipFile(bundle_path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "cqt.tflite":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(item, data)
    for bad, fragment in ((truncated, "truncated"), (tampered, "tampered")):
        result = CliRunner().invoke(app, ["info", str(bad)])
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1 and fragment in result.stderr


def test_export_refuses_missing_spectrogram(tiny_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", str(tiny_run), "--features", "gam", "--out", str(tmp_path / "x.easc")]
    )
    assert result.exit_code == 2 and "no gam model" in result.stderr
    assert not (tmp_path / "x.easc").exists()
