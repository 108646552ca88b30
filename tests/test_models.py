"""The three Keras models match the paper's layer tables, sizes and costs.

Shapes are checked layer by layer against Tables 1, 3 and 4 at width 1.0 (graph building
only, no forward pass); forward passes use width 0.25 to stay fast on a small CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow (the [train] extra) is not installed")

import keras

from edge_asc.train.models import (
    MODELS,
    build_cdnn,
    build_crnn,
    build_joint,
    build_model,
    count_macs,
    describe,
    scaled,
)

N_CLASSES = 10

# Table 1, CNN part (six Vg-Cv blocks). The block's last layer carries the table's shape.
CNN_PART = {
    "cnn_bn0": (128, 128, 1),
    # Vg-Cv 01: BN - Cv[9x9] - ReLU - BN - AP[2x2] - Dr(10%) -> 64x64x32
    "cnn_conv1": (128, 128, 32),
    "cnn_bn1": (128, 128, 32),
    "cnn_pool1": (64, 64, 32),
    "cnn_drop1": (64, 64, 32),
    # Vg-Cv 02: Cv[7x7] - ReLU - BN - AP[2x2] - Dr(15%) -> 32x32x64
    "cnn_conv2": (64, 64, 64),
    "cnn_bn2": (64, 64, 64),
    "cnn_pool2": (32, 32, 64),
    "cnn_drop2": (32, 32, 64),
    # Vg-Cv 03: Cv[5x5] - ReLU - BN - Dr(20%) -> 32x32x128
    "cnn_conv3": (32, 32, 128),
    "cnn_bn3": (32, 32, 128),
    "cnn_drop3": (32, 32, 128),
    # Vg-Cv 04: Cv[5x5] - ReLU - BN - AP[2x2] - Dr(20%) -> 16x16x128
    "cnn_conv4": (32, 32, 128),
    "cnn_bn4": (32, 32, 128),
    "cnn_pool4": (16, 16, 128),
    "cnn_drop4": (16, 16, 128),
    # Vg-Cv 05: Cv[3x3] - ReLU - BN - Dr(25%) -> 16x16x256
    "cnn_conv5": (16, 16, 256),
    "cnn_bn5": (16, 16, 256),
    "cnn_drop5": (16, 16, 256),
    # Vg-Cv 06: Cv[3x3] - ReLU - BN - GAP - Dr(25%) -> 256
    "cnn_conv6": (16, 16, 256),
    "cnn_bn6": (16, 16, 256),
    "cnn_gap": (256,),
    "cnn_drop6": (256,),
}

# Table 1, DNN part (Vg-Fl blocks 01-03).
CDNN_HEAD = {
    "dnn_fc1": (512,),
    "dnn_drop1": (512,),
    "dnn_fc2": (1024,),
    "dnn_drop2": (1024,),
    "dnn_out": (N_CLASSES,),
}

# Table 3 (C-RNN). The Bi-GRU has 64 units per direction, hence 128x128 (the table prints
# 128x256, which would need 128 units and 4.97 M parameters for the joint model).
CRNN_PART = {
    "crnn_bn0": (128, 128, 1),
    # Re-Cv 01: BN - Cv[4x1] - ReLU - BN - AP[2x1] - Dr(10%) -> 64x128x32
    "crnn_conv1": (128, 128, 32),
    "crnn_bn1": (128, 128, 32),
    "crnn_pool1": (64, 128, 32),
    "crnn_drop1": (64, 128, 32),
    # Re-Cv 02: Cv[4x1] - ReLU - BN - AP[2x1] - Dr(15%) -> 32x128x64
    "crnn_conv2": (64, 128, 64),
    "crnn_bn2": (64, 128, 64),
    "crnn_pool2": (32, 128, 64),
    "crnn_drop2": (32, 128, 64),
    # Re-Cv 03: Cv[4x1] - ReLU - BN - AP[2x1] - Dr(20%) -> 16x128x128
    "crnn_conv3": (32, 128, 128),
    "crnn_bn3": (32, 128, 128),
    "crnn_pool3": (16, 128, 128),
    "crnn_drop3": (16, 128, 128),
    # Re-Cv 04: Cv[4x1] - ReLU - BN - AP[16x1] - Dr(20%) -> 128x256
    "crnn_conv4": (16, 128, 256),
    "crnn_bn4": (16, 128, 256),
    "crnn_pool4": (1, 128, 256),
    "crnn_drop4": (1, 128, 256),
    "crnn_reshape": (128, 256),
    # Re-Bi-GRU: Bi-GRU (64 hidden states, 30% dropout)
    "crnn_gru": (128, 128),
    "crnn_gru_drop": (128, 128),
    # Re-GlAv: GAP -> 128
    "crnn_gap": (128,),
}

# Table 4 (DNN-02, Re-Fl blocks 01-03).
DNN02_HEAD = {
    "dnn02_fc1": (2048,),
    "dnn02_drop1": (2048,),
    "dnn02_fc2": (1024,),
    "dnn02_drop2": (1024,),
    "dnn02_out": (N_CLASSES,),
}

EXPECTED_SHAPES = {
    "cdnn": {"patch": (128, 128, 1), **CNN_PART, **CDNN_HEAD},
    "crnn": {"patch": (128, 128, 1), **CRNN_PART, **DNN02_HEAD},
    "joint": {
        "patch": (128, 128, 1),
        **CNN_PART,
        **CRNN_PART,
        "joint_concat": (384,),
        **DNN02_HEAD,
    },
}

# Exact parameter counts at width 1.0, 10 classes (the joint one is the 4.80 M).
EXPECTED_PARAMS = {"cdnn": 2_273_550, "crnn": 2_670_830, "joint": 4_801_522}


@pytest.fixture(scope="module")
def full_models() -> dict[str, keras.Model]:
    """The three models at width 1.0 (graph construction only)."""
    return {name: build_model(name, N_CLASSES) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_shape_matches_tables(full_models: dict[str, keras.Model], name: str) -> None:
    rows = describe(full_models[name])
    got = {layer: shape for layer, shape, _ in rows}
    assert len(got) == len(rows), "layer names must be unique"
    assert got == EXPECTED_SHAPES[name]


def test_joint_parameter_count_is_4_80_m(full_models: dict[str, keras.Model]) -> None:
    params = full_models["joint"].count_params()
    assert abs(params - 4.80e6) <= 0.01e6
    assert params == EXPECTED_PARAMS["joint"]
    assert sum(p for _, _, p in describe(full_models["joint"])) == params


@pytest.mark.parametrize("name", MODELS)
def test_parameter_counts(full_models: dict[str, keras.Model], name: str) -> None:
    assert full_models[name].count_params() == EXPECTED_PARAMS[name]


def test_bigru_has_64_units_per_direction(full_models: dict[str, keras.Model]) -> None:
    gru = full_models["joint"].get_layer("crnn_gru")
    assert gru.forward_layer.units == gru.backward_layer.units == 64
    # reset_after GRU: 3 * (in * u + u * u + 2 u) per direction, in = 256.
    assert gru.count_params() == 2 * 3 * (256 * 64 + 64 * 64 + 2 * 64)
    assert gru.forward_layer.unroll, "unrolled by default so TFLite needs no Flex ops"


def test_joint_macs_is_1_80_g(full_models: dict[str, keras.Model]) -> None:
    macs = count_macs(full_models["joint"])
    assert abs(macs - 1.80e9) <= 0.02e9
    # The joint model costs exactly the sum of its two branches and the DNN-02 head.
    cnn = count_macs(full_models["cdnn"]) - (256 * 512 + 512 * 1024 + 1024 * N_CLASSES)
    crnn = count_macs(full_models["crnn"]) - (128 * 2048 + 2048 * 1024 + 1024 * N_CLASSES)
    head = 384 * 2048 + 2048 * 1024 + 1024 * N_CLASSES
    assert macs == cnn + crnn + head


def test_count_macs_follows_documented_formulas() -> None:
    inputs = keras.Input((8, 6, 2))
    x = keras.layers.Conv2D(3, (3, 2), padding="same")(inputs)  # 8*6 * 3*2*2*3
    x = keras.layers.BatchNormalization()(x)  # 0
    x = keras.layers.Reshape((8, 18))(x)
    x = keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True))(x)  # 2*8*3*(18*5+25)
    x = keras.layers.Dense(4)(x)  # 8 * 10*4 (per time step)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(2)(x)  # 4*2
    model = keras.Model(inputs, outputs)
    expected = 48 * 36 + 2 * 8 * 3 * (18 * 5 + 5 * 5) + 8 * 40 + 8
    assert count_macs(model) == expected


def test_count_macs_rejects_unknown_weighted_layers() -> None:
    inputs = keras.Input((4, 3))
    outputs = keras.layers.Embedding(10, 2)(inputs)
    with pytest.raises(NotImplementedError, match="Embedding"):
        count_macs(keras.Model(inputs, outputs))


def test_width_scales_conv_params_quadratically(full_models: dict[str, keras.Model]) -> None:
    half = build_joint(N_CLASSES, width=0.5)
    full = full_models["joint"]
    # Convolutions whose input and output channels both scale: exactly width**2 weights.
    for layer in [f"cnn_conv{i}" for i in range(2, 7)] + [f"crnn_conv{i}" for i in range(2, 5)]:
        assert half.get_layer(layer).kernel.shape[-1] * 2 == full.get_layer(layer).kernel.shape[-1]
        ratio = np.prod(half.get_layer(layer).kernel.shape) / np.prod(
            full.get_layer(layer).kernel.shape
        )
        assert ratio == pytest.approx(0.25)
    # Whole models: roughly width**2 (first convs, biases and the output layer scale slower).
    for width, (low, high) in {0.5: (0.25, 0.30), 0.25: (0.0625, 0.09)}.items():
        small = half if width == 0.5 else build_joint(N_CLASSES, width=width)
        p_ratio = small.count_params() / full.count_params()
        m_ratio = count_macs(small) / count_macs(full)
        assert low <= p_ratio <= high, (width, p_ratio)
        assert low <= m_ratio <= high, (width, m_ratio)
        assert small.get_layer("crnn_gru").forward_layer.units == scaled(64, width)
        assert small.get_layer("dnn02_fc1").units == scaled(2048, width)
        assert small.get_layer("dnn02_out").units == N_CLASSES  # output layer never scales


def test_scaled_rounds_to_at_least_one() -> None:
    assert scaled(32, 1.0) == 32
    assert scaled(32, 0.125) == 4
    assert scaled(64, 0.3) == 19
    assert scaled(32, 0.001) == 1


@pytest.mark.parametrize("name", MODELS)
def test_outputs_are_probabilities(name: str) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(name, 7, width=0.25)
    x = np.random.default_rng(0).standard_normal((3, 128, 128, 1)).astype(np.float32)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (3, 7)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="cdnn, crnn, joint"):
        build_model("resnet", N_CLASSES)


def test_build_model_name_is_case_insensitive() -> None:
    assert build_model(" CDNN ", N_CLASSES, width=0.25).name == "cdnn"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_classes": 0}, "n_classes"),
        ({"n_classes": 10, "width": 0.0}, "width"),
        ({"n_classes": 10, "l2": -1.0}, "l2"),
        ({"n_classes": 10, "input_shape": (100, 128, 1)}, "multiple of 8"),
        ({"n_classes": 10, "crnn_pool": "max"}, "crnn_pool"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_crnn(**kwargs)


def test_l2_regularises_kernels_and_zero_disables_it() -> None:
    model = build_joint(N_CLASSES, width=0.25)
    for name in ("cnn_conv1", "crnn_conv4", "dnn02_fc1", "dnn02_out"):
        assert model.get_layer(name).kernel_regularizer.get_config()["l2"] == pytest.approx(1e-4)
    assert model.get_layer("crnn_gru").forward_layer.kernel_regularizer is not None
    plain = build_joint(N_CLASSES, width=0.25, l2=0.0)
    assert all(getattr(layer, "kernel_regularizer", None) is None for layer in plain.layers)
    assert plain.get_layer("crnn_gru").forward_layer.kernel_regularizer is None


def test_crnn_options() -> None:
    # "frame" averages each frame's features (always 128 values); "time" averages over time.
    frame = build_crnn(N_CLASSES, width=0.5)
    time = build_crnn(N_CLASSES, width=0.5, crnn_pool="time", unroll=False)
    assert tuple(frame.get_layer("crnn_gap").output.shape[1:]) == (128,)
    assert tuple(time.get_layer("crnn_gap").output.shape[1:]) == (64,)
    assert not time.get_layer("crnn_gru").forward_layer.unroll


def test_cdnn_builder_matches_build_model() -> None:
    a = describe(build_cdnn(N_CLASSES, width=0.25))
    b = describe(build_model("cdnn", N_CLASSES, width=0.25))
    assert a == b
