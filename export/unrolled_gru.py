"""A bidirectional GRU written out step by step for TFLite, with Keras's exact GRU maths.

Why not Keras's own ``GRU(unroll=True)``: it repeats the input projection and a biased
fully-connected layer at every one of the 2 x 128 steps. Full-integer quantization gives a
biased layer's int32 bias the scale ``input scale x weight scale``, so the converter stores a
fresh 192-channel bias (with per-channel scales and zero points) for every step: ~3 KB each,
~1.6 MB per model at width 1.0, a third of the int8 weights. Here the input projection runs
once over the whole sequence and the per-step recurrent product has no bias (the recurrent
bias is a shared constant added after it), so the quantized model holds each weight once.

The maths is Keras 3's GRU with ``reset_after=True`` (its default), gates ordered z, r, h::

    x_z, x_r, x_h = split(x @ W + b_in)
    u_z, u_r, u_h = split(h @ U + b_rec)
    z = sigmoid(x_z + u_z); r = sigmoid(x_r + u_r)
    h' = z * h + (1 - z) * tanh(x_h + r * u_h)

and the backward direction reads the sequence from its end and writes each state back at
its own time step, like ``Bidirectional(merge_mode="concat")``.
"""

from __future__ import annotations

import keras
from keras import ops


class UnrolledBiGRU(keras.layers.Layer):
    """Bidirectional GRU (concatenated, full sequences) over a fixed number of time steps.

    Parameters
    ----------
    units : int
        Units per direction.

    Weights, in the order of ``keras.layers.Bidirectional(keras.layers.GRU(...))``'s:
    forward kernel ``(features, 3 units)``, recurrent kernel ``(units, 3 units)``, bias
    ``(2, 3 units)``, then the same three for the backward direction.
    """

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape) -> None:
        features = int(input_shape[-1])
        self.cells = []
        for direction in ("forward", "backward"):
            kernel = self.add_weight((features, 3 * self.units), name=f"{direction}_kernel")
            recurrent = self.add_weight((self.units, 3 * self.units), name=f"{direction}_rec")
            bias = self.add_weight((2, 3 * self.units), name=f"{direction}_bias")
            self.cells.append((kernel, recurrent, bias))

    def call(self, x, mask=None):
        """``(batch, time, features)`` -> ``(batch, time, 2 units)``; patches have no mask.

        Both directions advance in the same step, as one GRU of ``2 units`` whose weights
        are block-diagonal: step ``t`` moves the forward state to time ``t`` and the
        backward state to time ``T - 1 - t``. Every step is then one set of ~14 small
        operators instead of two, which halves what the interpreter dispatches.
        """
        u = self.units
        (kernel_f, rec_f, bias_f), (kernel_b, rec_b, bias_b) = self.cells
        steps = ops.unstack(x, axis=1)
        # The backward direction reads the sequence from its end: its input at step t is
        # time T - 1 - t, placed beside the forward input so one projection serves both.
        paired = ops.concatenate([x, ops.stack(steps[::-1], axis=1)], axis=-1)
        kernel = _block_gates(kernel_f, kernel_b, u)
        # The z and r gates' recurrent biases add to the same sums as the input biases, so
        # they join the one projection of the whole sequence; only b_rec[h] sits inside r*(.).
        input_bias = ops.concatenate(
            [
                bias_f[0, :u] + bias_f[1, :u],
                bias_b[0, :u] + bias_b[1, :u],
                bias_f[0, u : 2 * u] + bias_f[1, u : 2 * u],
                bias_b[0, u : 2 * u] + bias_b[1, u : 2 * u],
                bias_f[0, 2 * u :],
                bias_b[0, 2 * u :],
            ]
        )
        projected = ops.matmul(paired, kernel) + input_bias  # (batch, T, 6u): zf zb rf rb hf hb
        steps_zr = ops.unstack(projected[..., : 4 * u], axis=1)
        steps_h = ops.unstack(projected[..., 4 * u :], axis=1)
        recurrent = _block_gates(rec_f, rec_b, u)
        recurrent_bias_h = ops.concatenate([bias_f[1, 2 * u :], bias_b[1, 2 * u :]])
        states = []
        h = None
        for step_zr, step_h in zip(steps_zr, steps_h, strict=True):
            if h is None:  # the initial state is zero: its recurrent product is zero too
                z_r = ops.sigmoid(step_zr)
                rec_h = recurrent_bias_h
            else:
                rec = ops.matmul(h, recurrent)
                z_r = ops.sigmoid(step_zr + rec[:, : 4 * u])
                rec_h = rec[:, 4 * u :] + recurrent_bias_h
            z, r = z_r[:, : 2 * u], z_r[:, 2 * u :]
            candidate = ops.tanh(step_h + r * rec_h)
            # z * h + (1 - z) * candidate, with h = 0 at the first step
            h = candidate - z * candidate if h is None else candidate + z * (h - candidate)
            states.append(h)  # [forward at t, backward at T - 1 - t]
        forward = ops.stack(states, axis=1)[..., :u]
        backward = ops.stack(states[::-1], axis=1)[..., u:]
        return ops.concatenate([forward, backward], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


def _block_gates(forward, backward, units: int):
    """Two directions' ``(rows, 3 units)`` gate matrices as one block-diagonal
    ``(2 rows, 6 units)`` matrix, columns ordered z_f, z_b, r_f, r_b, h_f, h_b."""
    zeros = ops.zeros_like(forward[:, :units])
    columns_f, columns_b = [], []
    for gate in range(3):
        part = slice(gate * units, (gate + 1) * units)
        columns_f += [forward[:, part], zeros]
        columns_b += [zeros, backward[:, part]]
    return ops.concatenate(
        [ops.concatenate(columns_f, axis=1), ops.concatenate(columns_b, axis=1)], axis=0
    )
