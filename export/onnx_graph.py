"""Keras patch classifier to an ONNX graph, for ONNX Runtime's TensorRT / CUDA providers.

Why our own writer instead of tf2onnx: tf2onnx pins an old protobuf that TensorFlow 2.16+ no
longer installs beside, and the paper's networks use a dozen plain layer types that map one
to one onto ONNX operators. The bidirectional GRU becomes ONNX's own ``GRU`` operator
(``linear_before_reset=1`` is Keras's ``reset_after=True``; both order the gates z, r, h),
which TensorRT and cuDNN run as one fused recurrent layer instead of 256 unrolled steps.

The graph takes the same input as the TFLite models, one normalised patch
``(1, bins, frames, 1)`` float32, and returns class probabilities ``(1, C)``. Images run
channels-first inside (ONNX's convolution layout); a tensor is transposed back only where a
layer's meaning depends on the layout (reshape, flatten-like pooling, dense).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_asc.errors import EdgeAscError
from edge_asc.export.integer_form import batch_norm_affine

OPSET = 17
"""ONNX opset written (ONNX Runtime >= 1.11, TensorRT 8.5+)."""

INPUT_NAME = "patch"
OUTPUT_NAME = "probabilities"


class OnnxExportError(EdgeAscError):
    """A layer this writer does not know; one line."""


class _Graph:
    """Nodes and initializers being collected, with each Keras tensor's ONNX name and layout."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        from onnx import helper

        out = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attributes))
        return out


def to_onnx(model) -> bytes:
    """Write a Keras patch classifier as a serialized ONNX model.

    Parameters
    ----------
    model : keras.Model
        A functional model built by :mod:`edge_asc.train.models` (C-DNN, C-RNN or joint),
        trained or not; the rolled and unrolled GRU are the same to this writer.

    Returns
    -------
    bytes
        The ``.onnx`` model, checked by ``onnx.checker``.

    Raises
    ------
    OnnxExportError
        If the model has a layer type or setting this writer does not translate.
    """
    import onnx
    from onnx import TensorProto, helper

    graph = _Graph()
    shape = [1, *(int(n) for n in model.input_shape[1:])]
    names: dict[int, tuple[str, str]] = {}  # id(KerasTensor) -> (onnx name, "nchw" | "plain")
    (model_input,) = model.inputs
    to_nchw = graph.node("Transpose", [INPUT_NAME], "nchw", perm=[0, 3, 1, 2])
    names[id(model_input)] = (to_nchw, "nchw")

    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        node = layer._inbound_nodes[0]
        sources = [names[id(t)] for t in node.input_tensors]
        out = _layer(graph, layer, sources)
        for tensor in node.output_tensors:
            names[id(tensor)] = out
    final, layout = names[id(model.outputs[0])]
    if layout != "plain":
        raise OnnxExportError("the model's output is not a vector of class probabilities")
    graph.nodes.append(helper.make_node("Identity", [final], [OUTPUT_NAME], name=OUTPUT_NAME))
    n_classes = int(model.output_shape[-1])
    onnx_graph = helper.make_graph(
        graph.nodes,
        "edge_asc_patch_classifier",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, n_classes])],
        graph.initializers,
    )
    proto = helper.make_model(
        onnx_graph, producer_name="edge-asc", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    proto.ir_version = 8  # readable by ONNX Runtime 1.14+ (Jetson builds lag behind PyPI)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _layer(graph: _Graph, layer, sources: list[tuple[str, str]]) -> tuple[str, str]:
    """Emit one Keras layer's nodes; return its output's ONNX name and layout."""
    kind = type(layer).__name__
    name, layout = sources[0]
    if kind in ("Dropout", "GaussianNoise", "SpatialDropout2D"):
        return name, layout  # inference: identity
    if kind == "Conv2D":
        return _conv2d(graph, layer, name, layout), "nchw"
    if kind == "BatchNormalization":
        return _batch_norm(graph, layer, name, layout), layout
    if kind in ("AveragePooling2D", "MaxPooling2D"):
        return _pool2d(graph, layer, name, layout), "nchw"
    if kind == "GlobalAveragePooling2D":
        _require(layout == "nchw" and not layer.keepdims, layer, "expects an image input")
        return graph.node("ReduceMean", [name], "gap2d", axes=[2, 3], keepdims=0), "plain"
    if kind == "GlobalAveragePooling1D":
        _require(layout == "plain" and not layer.keepdims, layer, "expects a sequence")
        axis = 2 if layer.data_format == "channels_first" else 1
        return graph.node("ReduceMean", [name], "gap1d", axes=[axis], keepdims=0), "plain"
    if kind == "Reshape":
        name = _plain(graph, name, layout)
        target = graph.constant("shape", np.array([-1, *layer.target_shape], dtype=np.int64))
        return graph.node("Reshape", [name, target], "reshape"), "plain"
    if kind == "Concatenate":
        _require(all(lay == "plain" for _, lay in sources), layer, "joins vectors only")
        return graph.node("Concat", [n for n, _ in sources], "concat", axis=layer.axis), "plain"
    if kind == "Dense":
        return _dense(graph, layer, _plain(graph, name, layout)), "plain"
    if kind == "Bidirectional":
        _require(layout == "plain", layer, "expects a sequence")
        return _bidirectional_gru(graph, layer, name), "plain"
    raise OnnxExportError(f"layer {layer.name!r} ({kind}) has no ONNX translation here")


def _require(condition: bool, layer, what: str) -> None:
    if not condition:
        raise OnnxExportError(f"layer {layer.name!r} ({type(layer).__name__}) {what}")


def _plain(graph: _Graph, name: str, layout: str) -> str:
    """Back to Keras's channels-last layout where the layout starts to matter."""
    return graph.node("Transpose", [name], "nhwc", perm=[0, 2, 3, 1]) if layout == "nchw" else name


def _activation(graph: _Graph, layer, name: str) -> str:
    activation = layer.activation.__name__
    ops = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if activation == "linear":
        return name
    if activation == "softmax":
        return graph.node("Softmax", [name], "softmax", axis=-1)
    if activation in ops:
        return graph.node(ops[activation], [name], activation)
    raise OnnxExportError(f"layer {layer.name!r}: activation {activation!r} is not translated")


def _same_or_valid(layer) -> str:
    # TensorFlow's "same" pads the extra row / column at the end: ONNX's SAME_UPPER.
    padding = layer.padding.lower()
    _require(padding in ("same", "valid"), layer, f"has padding {padding!r}")
    return "SAME_UPPER" if padding == "same" else "VALID"


def _conv2d(graph: _Graph, layer, name: str, layout: str) -> str:
    _require(layout == "nchw", layer, "expects an image input")
    _require(layer.data_format == "channels_last" and layer.groups == 1, layer, "is unusual")
    kernel = layer.kernel.numpy().transpose(3, 2, 0, 1)  # (h, w, in, out) -> (out, in, h, w)
    inputs = [name, graph.constant("conv_w", kernel.astype(np.float32))]
    if layer.use_bias:
        inputs.append(graph.constant("conv_b", layer.bias.numpy().astype(np.float32)))
    out = graph.node(
        "Conv",
        inputs,
        "conv",
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        auto_pad=_same_or_valid(layer),
    )
    return _activation(graph, layer, out)


def _batch_norm(graph: _Graph, layer, name: str, layout: str) -> str:
    rank = 4 if layout == "nchw" else len(layer.input.shape)
    axis = layer.axis if layer.axis >= 0 else rank + layer.axis
    _require(axis == rank - 1, layer, "normalises an axis other than the last")
    channels = int(layer.moving_mean.shape[0])
    gamma = layer.gamma.numpy() if layer.scale else np.ones(channels)
    beta = layer.beta.numpy() if layer.center else np.zeros(channels)
    stats = [gamma, beta, layer.moving_mean.numpy(), layer.moving_variance.numpy()]
    inputs = [name] + [graph.constant("bn", s.astype(np.float32)) for s in stats]
    if layout == "nchw":  # channels are axis 1 already
        return graph.node("BatchNormalization", inputs, "bn", epsilon=float(layer.epsilon))
    # A channels-last vector or sequence: y = x * scale + shift, the same inference maths.
    scale, shift = batch_norm_affine(layer)
    scaled = graph.node("Mul", [name, graph.constant("bn_scale", scale.astype(np.float32))], "bn")
    return graph.node("Add", [scaled, graph.constant("bn_shift", shift.astype(np.float32))], "bn")


def _pool2d(graph: _Graph, layer, name: str, layout: str) -> str:
    _require(layout == "nchw" and layer.data_format == "channels_last", layer, "is unusual")
    attributes: dict[str, Any] = {
        "kernel_shape": list(layer.pool_size),
        "strides": list(layer.strides),
        "auto_pad": _same_or_valid(layer),
    }
    if type(layer).__name__ == "AveragePooling2D":
        return graph.node("AveragePool", [name], "avgpool", count_include_pad=0, **attributes)
    return graph.node("MaxPool", [name], "maxpool", **attributes)


def _dense(graph: _Graph, layer, name: str) -> str:
    weights = graph.constant("dense_w", layer.kernel.numpy().astype(np.float32))
    out = graph.node("MatMul", [name, weights], "dense")
    if layer.use_bias:
        bias = graph.constant("dense_b", layer.bias.numpy().astype(np.float32))
        out = graph.node("Add", [out, bias], "dense")
    return _activation(graph, layer, out)


def _bidirectional_gru(graph: _Graph, layer, name: str) -> str:
    forward, backward = layer.forward_layer, layer.backward_layer
    for gru in (forward, backward):
        _require(
            type(gru).__name__ == "GRU"
            and gru.reset_after
            and gru.return_sequences
            and gru.activation.__name__ == "tanh"
            and gru.recurrent_activation.__name__ == "sigmoid",
            layer,
            "is not Keras's default GRU returning sequences",
        )
    _require(layer.merge_mode == "concat", layer, "does not concatenate its directions")
    units = int(forward.units)
    w, r, b = [], [], []
    for gru in (forward, backward):
        kernel, recurrent, bias = (v.numpy() for v in gru.cell.weights)
        w.append(kernel.T)  # (features, 3u) -> (3u, features); gates z, r, h in both
        r.append(recurrent.T)
        b.append(bias.reshape(-1))  # Keras (2, 3u): input bias, recurrent bias = ONNX's Wb, Rb
    sequence_first = graph.node("Transpose", [name], "seq_first", perm=[1, 0, 2])
    out = graph.node(
        "GRU",
        [
            sequence_first,
            graph.constant("gru_w", np.stack(w).astype(np.float32)),
            graph.constant("gru_r", np.stack(r).astype(np.float32)),
            graph.constant("gru_b", np.stack(b).astype(np.float32)),
        ],
        "gru",
        hidden_size=units,
        direction="bidirectional",
        linear_before_reset=1,
    )
    # Y: (time, direction, batch, units) -> (batch, time, direction * units), forward first.
    batch_first = graph.node("Transpose", [out], "batch_first", perm=[2, 0, 1, 3])
    shape = graph.constant("shape", np.array([0, 0, 2 * units], dtype=np.int64))
    return graph.node("Reshape", [batch_first, shape], "gru_concat")
