"""Batch normalisation and average pooling rewritten as depthwise convolutions, for int8.

The paper's blocks end in ``Conv2D(relu) - BatchNorm - AvgPool``. After the ReLU a batch
norm cannot fold into its convolution, so TFLite writes it as a ``MUL`` and an ``ADD``; in a
full-integer model XNNPACK takes those but not a quantized ``AVERAGE_POOL_2D``, which splits
the graph into several delegate partitions with TFLite's reference kernels between them
(measured on the default's C-DNN: 4 partitions, 32 operators, and int8 slower than dynamic
range). Both are per-channel linear maps, so they are rewritten here, with the same weights:

* a batch norm followed only by an average pooling, and that pooling: one depthwise
  convolution with the pool's kernel and stride, weights ``scale / (ph * pw)`` and bias
  ``shift`` (the mean of ``a x + b`` is ``a mean(x) + b``);
* any other batch norm on a feature map: a 1x1 depthwise convolution ``scale``, ``shift``;
* any other average pooling: a depthwise convolution of ``1 / (ph * pw)``.

In float the result equals the original to rounding. The convolution's weights are exact
in int8 too (one value per channel: per-channel quantization represents it exactly). Used
for full int8 only (``benchmarks/bench_gru_quant.py``, joint model: int8 4.6 against 6.4 ms
per patch at width 0.25 and 20.5 against 25.4 at width 1.0); float32 and dynamic range,
whose float batch norms and poolings XNNPACK already takes, ran slower rewritten (dynamic
range 4.6 against 3.6 and 19.6 against 17.0 ms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["batch_norm_affine", "integer_form"]


def batch_norm_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """A trained batch norm's inference map ``y = x * scale + shift``, per channel.

    Parameters
    ----------
    layer : keras.layers.BatchNormalization
        With or without its learned ``gamma`` (``scale=False``) and ``beta``
        (``center=False``).

    Returns
    -------
    tuple of numpy.ndarray
        ``scale`` and ``shift``, float64, one value per channel.
    """
    mean = np.asarray(layer.moving_mean.numpy(), np.float64)
    var = np.asarray(layer.moving_variance.numpy(), np.float64)
    gamma = np.asarray(layer.gamma.numpy(), np.float64) if layer.scale else np.ones_like(mean)
    beta = np.asarray(layer.beta.numpy(), np.float64) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def _layers():
    """Keras layer classes that accept (and ignore) the ``mask``/``training`` keywords.

    ``clone_model`` calls each new layer as the old one was called; batch norm's calls
    carry ``mask`` and ``training``, which a plain depthwise convolution does not take.
    """
    import keras

    class LinearAsDepthwise(keras.layers.DepthwiseConv2D):
        """A batch norm, an average pooling, or both, as one depthwise convolution."""

        def call(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
            return super().call(inputs)

    class FoldedAway(keras.layers.Layer):
        """Passes its input on: a batch norm merged into the pooling after it."""

        def call(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
            return inputs

    return LinearAsDepthwise, FoldedAway


def _consumers(model) -> dict[str, list[Any]]:
    """Layer name to the layers that take its output."""
    out: dict[str, list[Any]] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                out.setdefault(tensor._keras_history.operation.name, []).append(layer)
    return out


def integer_form(model):
    """The same network with its batch norms and average poolings as depthwise convolutions.

    Parameters
    ----------
    model : keras.Model
        An export graph (:func:`edge_asc.export.convert.export_graph`), channels last.

    Returns
    -------
    keras.Model
        A copy computing the same function; the model itself is returned when it has
        nothing to rewrite.
    """
    import keras

    depthwise, folded_away = _layers()
    consumers = _consumers(model)
    # Layer name to (depthwise convolution's keywords, its weights), or (None, None) for a
    # batch norm merged into the pooling after it.
    plan: dict[str, tuple[dict[str, Any] | None, list[np.ndarray] | None]] = {}

    def pooling(layer) -> bool:
        return isinstance(layer, keras.layers.AveragePooling2D) and layer.padding == "valid"

    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if len(layer.output.shape) != 4 or layer.axis not in (-1, 3):
            continue
        scale, shift = batch_norm_affine(layer)
        shift = shift.astype(np.float32)
        after = consumers.get(layer.name, [])
        if len(after) == 1 and pooling(after[0]):
            pool = after[0]
            taps = pool.pool_size[0] * pool.pool_size[1]
            kernel = np.broadcast_to(scale / taps, (*pool.pool_size, scale.size))
            plan[layer.name] = (None, None)
            plan[pool.name] = (
                {"kernel_size": pool.pool_size, "strides": pool.strides, "use_bias": True},
                [kernel[..., None].astype(np.float32), shift],
            )
        else:
            plan[layer.name] = (
                {"kernel_size": 1, "use_bias": True},
                [scale.reshape(1, 1, -1, 1).astype(np.float32), shift],
            )
    for layer in model.layers:
        if pooling(layer) and layer.name not in plan:
            taps = layer.pool_size[0] * layer.pool_size[1]
            shape = (*layer.pool_size, int(layer.input.shape[-1]), 1)
            plan[layer.name] = (
                {"kernel_size": layer.pool_size, "strides": layer.strides, "use_bias": False},
                [np.full(shape, 1.0 / taps, np.float32)],
            )
    if not plan:
        return model

    def clone(layer):
        if layer.name not in plan:
            return layer.__class__.from_config(layer.get_config())
        options, _ = plan[layer.name]
        if options is None:
            return folded_away(name=layer.name)
        return depthwise(name=layer.name, **options)

    rebuilt = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, rebuilt.layers, strict=True):
        weights = plan[old.name][1] if old.name in plan else old.get_weights()
        if weights is not None:
            new.set_weights(weights)
    return rebuilt
