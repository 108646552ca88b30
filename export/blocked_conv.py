"""A wide convolution on one input channel rewritten on 2x2 blocks, for XNNPACK's memory.

The paper's C-DNN opens with a 9x9 convolution of the one-channel 128x128 spectrogram.
XNNPACK runs a convolution as an indirect GEMM whose indirection buffer holds one pointer per
output pixel and kernel tap: 128 x 128 x 81 x 8 bytes, 10.6 MB for that single layer, per
interpreter, more than the whole int8 model of the default bundle. Here the same convolution
runs on the input cut into 2x2 blocks (space to depth): the kernel, zero-padded from 9x9 to
10x10 taps, becomes a 5x5 kernel over 4 channels with 4 x filters outputs (one per filter and
position in the block), and depth to space puts the pixels back. A quarter of the output
pixels and 25 instead of 81 taps: the buffer shrinks 13x, for 23 % more multiply-adds on a
layer that is 12 % of the default C-DNN's (3 % at width 1.0). It also runs faster: XNNPACK's
kernels suit 4 input channels better than one (the default's int8 models took half their
earlier time in the pipeline, ``benchmarks/bench_runtime.py``).

Every output is the same sum of the same products (plus products with zero weights), so the
result equals the original to float rounding, and in int8 each new filter keeps its original
per-channel scale. Only a stride-1, undilated, ``same``-padded convolution with an odd square
kernel of 5 taps or more on a single input channel is rewritten: on more input channels the
extra multiply-adds would cost more than the buffer saves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["blocked_kernel", "blocked_wide_convolutions"]

MIN_TAPS = 5
"""Smallest kernel side that is rewritten (a 3x3 kernel's buffer is small already)."""


def rewritable(layer) -> bool:
    """Whether ``layer`` is a convolution this module rewrites."""
    import keras

    if type(layer) is not keras.layers.Conv2D:
        return False
    config = layer.get_config()
    height, width = layer.kernel_size
    in_h, in_w, channels = (layer.input.shape[i] for i in (1, 2, 3))
    return (
        config["data_format"] == "channels_last"
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding == "same"
        and config.get("groups", 1) == 1
        and height == width
        and height % 2 == 1
        and height >= MIN_TAPS
        and channels == 1
        and in_h is not None
        and in_w is not None
        and in_h % 2 == 0
        and in_w % 2 == 0
    )


def blocked_kernel(kernel: np.ndarray) -> np.ndarray:
    """A ``(k, k, c, f)`` kernel (``k`` odd) as its ``(b, b, 4 c, 4 f)`` kernel on 2x2 blocks.

    With the input padded by ``(k - 1) / 2`` on every side and cut into 2x2 blocks (channel
    order: row in block, column in block, channel, as ``space_to_depth``), output block
    ``(Y, X)``'s channel ``(dy, dx, f)`` (the order ``depth_to_space`` reads) is the original
    output at ``(2 Y + dy, 2 X + dx)``, filter ``f``. Tap ``(i, j)`` of the original kernel
    lands at block ``((dy + i) // 2, (dx + j) // 2)``, position ``((dy + i) % 2, (dx + j) % 2)``.
    """
    k, _, channels, filters = kernel.shape
    side = (k + 2) // 2
    out = np.zeros((side, side, 2, 2, channels, 2, 2, filters), kernel.dtype)
    for dy in range(2):
        for dx in range(2):
            for i in range(k):
                for j in range(k):
                    by, sy = divmod(dy + i, 2)
                    bx, sx = divmod(dx + j, 2)
                    out[by, bx, sy, sx, :, dy, dx, :] = kernel[i, j]
    return out.reshape(side, side, 4 * channels, 4 * filters)


def _layer_class():
    import keras
    from keras import ops

    class BlockedConv2D(keras.layers.Layer):
        """A ``same`` convolution computed on 2x2 blocks (see :mod:`blocked_conv`)."""

        def __init__(self, taps: int, filters: int, activation: Any, use_bias: bool, **kwargs):
            super().__init__(**kwargs)
            self.taps, self.filters, self.use_bias = taps, filters, use_bias
            self.activation = keras.activations.get(activation)

        def build(self, input_shape) -> None:
            side, channels = (self.taps + 2) // 2, int(input_shape[-1])
            shape = (side, side, 4 * channels, 4 * self.filters)
            self.kernel = self.add_weight(shape, name="kernel")
            if self.use_bias:
                self.bias = self.add_weight((4 * self.filters,), name="bias")

        def call(self, x):
            _, height, width, channels = x.shape
            pad = (self.taps - 1) // 2
            x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            h2, w2 = (height + 2 * pad) // 2, (width + 2 * pad) // 2
            x = ops.reshape(x, (-1, h2, 2, w2, 2, channels))
            x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, h2, w2, 4 * channels))
            y = ops.conv(x, self.kernel, strides=1, padding="valid")
            if self.use_bias:
                y = y + self.bias
            y = self.activation(y)
            oh, ow = height // 2, width // 2
            y = ops.reshape(y, (-1, oh, ow, 2, 2, self.filters))
            y = ops.transpose(y, (0, 1, 3, 2, 4, 5))
            return ops.reshape(y, (-1, height, width, self.filters))

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.filters)

        def get_config(self) -> dict:
            return {
                **super().get_config(),
                "taps": self.taps,
                "filters": self.filters,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
            }

    return BlockedConv2D


def blocked_wide_convolutions(model):
    """The same network with its wide one-channel convolutions computed on 2x2 blocks.

    Parameters
    ----------
    model : keras.Model
        An export graph, channels last.

    Returns
    -------
    keras.Model
        A copy computing the same function; the model itself when nothing is rewritten.
    """
    import keras

    targets = {layer.name for layer in model.layers if rewritable(layer)}
    if not targets:
        return model
    blocked = _layer_class()

    def clone(layer):
        if layer.name not in targets:
            return layer.__class__.from_config(layer.get_config())
        return blocked(
            taps=layer.kernel_size[0],
            filters=layer.filters,
            activation=layer.get_config()["activation"],
            use_bias=layer.use_bias,
            name=layer.name,
        )

    rebuilt = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, rebuilt.layers, strict=True):
        if old.name not in targets:
            new.set_weights(old.get_weights())
            continue
        weights = old.get_weights()
        kernel = blocked_kernel(weights[0])
        new.set_weights([kernel, np.tile(weights[1], 4)] if old.use_bias else [kernel])
    return rebuilt
