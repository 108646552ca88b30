"""The paper's three classifiers (C-DNN, C-RNN, joint) as Keras models, plus cost accounting.

Ngo et al. (2022) describe their networks only as layer tables: Table 1 (the C-DNN baseline),
Table 3 (the C-RNN branch) and Table 4 / Fig. 4 (the joint model: C-DNN's CNN part beside the
C-RNN, concatenated into "DNN-02"). This module is the single place those tables become code,
so training, evaluation, the CLI and the TFLite export all build exactly the same graphs and
can refer to layers by stable names (``cnn_conv1``, ``crnn_gru``, ``dnn02_out``, ...).

Reading of the tables (width 1.0, 128x128x1 patches, 10 classes):

* Every convolution uses ``"same"`` padding, so only pooling changes the spatial size; the
  "Cv - ReLU" pair is one ``Conv2D(activation="relu")`` layer (same maths, fewer layers).
* The Bi-GRU has 64 units per direction (the table's "64 hidden states"), so its output is
  128 frames x 128 features, not the 128x256 printed in Table 3; with 128 units the joint
  model would have 4.97 M parameters instead of the paper's 4.80 M.
* The Re-GlAv block is, as the text says, a global average "applied on each temporal frame":
  each frame's features are averaged, giving one value per frame (128 values). ``crnn_pool=
  "time"`` averages over time instead (also 128 values at width 1.0).
* The Re-Bi-GRU block's "30% dropout" is a ``Dropout`` layer on the GRU output (the
  tables end every block with its dropout), not ``GRU(dropout=...)``, whose seed-generator
  state would otherwise show up as resource-variable ops in a TFLite export.
* Outputs are softmax probabilities (training uses a KL-divergence loss on mixup labels).

:func:`count_macs` counts multiply-accumulates analytically; the joint model at width 1.0 has
4,801,522 parameters and 1,799,628,800 MACs per patch (the issue's 4.80 M / 1.80 GMAC).
The GRU is unrolled by default because the 128 time steps are fixed by the patch, and an
unrolled GRU needs no Flex ``TensorListReserve``; training may keep it rolled (faster to
compile, cuDNN on a GPU), since the export writes its own step-by-step GRU with the same
weights (``edge_asc.export.unrolled_gru``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import keras
from keras import layers

MODELS: tuple[str, ...] = ("cdnn", "crnn", "joint")
"""Names accepted by :func:`build_model`."""

INPUT_SHAPE: tuple[int, int, int] = (128, 128, 1)
"""Default patch shape: frequency bins x time frames x 1."""

L2: float = 1e-4
"""The paper's l2 coefficient on kernels (Section IV-C)."""

# Table 1, CNN part: (filters, kernel, pooling, dropout) per Vg-Cv block. Pooling 2 is a 2x2
# average pool, None is none, "gap" is global average pooling (block 06).
_CNN_BLOCKS: tuple[tuple[int, int, int | str | None, float], ...] = (
    (32, 9, 2, 0.10),
    (64, 7, 2, 0.15),
    (128, 5, None, 0.20),
    (128, 5, 2, 0.20),
    (256, 3, None, 0.25),
    (256, 3, "gap", 0.25),
)

# Table 3: (filters, dropout) per Re-Cv block; all use a [4 x 1] kernel. Blocks 01-03 pool
# [2 x 1]; block 04 pools whatever frequency resolution remains ([16 x 1] for 128 bins).
_CRNN_BLOCKS: tuple[tuple[int, float], ...] = ((32, 0.10), (64, 0.15), (128, 0.20), (256, 0.20))
_CRNN_KERNEL = (4, 1)
_GRU_UNITS = 64
_GRU_DROPOUT = 0.30

# Table 1 bottom (Vg-Fl blocks) and Table 4 (DNN-02, Re-Fl blocks): hidden widths.
_CDNN_HEAD = (512, 1024)
_DNN02_HEAD = (2048, 1024)
_HEAD_DROPOUT = 0.30

CrnnPool = Literal["frame", "time"]


def scaled(n: int, width: float) -> int:
    """Scale a layer width by the model width multiplier.

    Parameters
    ----------
    n : int
        The paper's width (filters, GRU units or dense units).
    width : float
        Multiplier; 1.0 is exactly the paper.

    Returns
    -------
    int
        ``max(1, round(n * width))``.
    """
    return max(1, round(n * width))


def _check_common(n_classes: int, width: float, input_shape: Sequence[int], l2: float) -> None:
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a positive finite number, got {width!r}")
    if len(input_shape) != 3 or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"input_shape must be (freq, time, channels), got {input_shape!r}")
    if not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a non-negative number, got {l2!r}")


def _regularizer(l2: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(l2) if l2 > 0 else None


def _cnn_part(x: keras.KerasTensor, width: float, l2: float) -> keras.KerasTensor:
    """Table 1, top: six Vg-Cv blocks mapping a patch to a 256-d vector (at width 1)."""
    x = layers.BatchNormalization(name="cnn_bn0")(x)
    for i, (filters, kernel, pool, dropout) in enumerate(_CNN_BLOCKS, start=1):
        x = layers.Conv2D(
            scaled(filters, width),
            kernel,
            padding="same",
            activation="relu",
            kernel_regularizer=_regularizer(l2),
            name=f"cnn_conv{i}",
        )(x)
        x = layers.BatchNormalization(name=f"cnn_bn{i}")(x)
        if pool == "gap":
            x = layers.GlobalAveragePooling2D(name="cnn_gap")(x)
        elif pool is not None:
            x = layers.AveragePooling2D(pool, name=f"cnn_pool{i}")(x)
        x = layers.Dropout(dropout, name=f"cnn_drop{i}")(x)
    return x


def _crnn_part(
    x: keras.KerasTensor, width: float, l2: float, unroll: bool, crnn_pool: CrnnPool
) -> keras.KerasTensor:
    """Table 3: four Re-Cv blocks, a bidirectional GRU over time and the Re-GlAv average."""
    n_freq, n_time = int(x.shape[1]), int(x.shape[2])
    if n_freq % 8 or n_freq < 8:
        raise ValueError(f"the C-RNN needs a multiple of 8 frequency bins, got {n_freq}")
    x = layers.BatchNormalization(name="crnn_bn0")(x)
    for i, (filters, dropout) in enumerate(_CRNN_BLOCKS, start=1):
        last = i == len(_CRNN_BLOCKS)
        x = layers.Conv2D(
            scaled(filters, width),
            _CRNN_KERNEL,
            padding="same",
            activation="relu",
            kernel_regularizer=_regularizer(l2),
            name=f"crnn_conv{i}",
        )(x)
        x = layers.BatchNormalization(name=f"crnn_bn{i}")(x)
        # Blocks 01-03 halve the frequency axis; block 04 averages what is left (16 bins).
        pool = (n_freq // 8, 1) if last else (2, 1)
        x = layers.AveragePooling2D(pool, name=f"crnn_pool{i}")(x)
        x = layers.Dropout(dropout, name=f"crnn_drop{i}")(x)
    # (1, time, channels) -> (time, channels): one feature vector per temporal frame.
    x = layers.Reshape((n_time, int(x.shape[-1])), name="crnn_reshape")(x)
    units = scaled(_GRU_UNITS, width)
    gru = layers.GRU(
        units,
        return_sequences=True,
        unroll=unroll,
        kernel_regularizer=_regularizer(l2),
        recurrent_regularizer=_regularizer(l2),
        name="gru",
    )
    x = layers.Bidirectional(gru, merge_mode="concat", name="crnn_gru")(x)
    # The block's 30% dropout is a layer after the GRU, like every other block's trailing Dr.
    # (GRU(dropout=...) would also leave seed-generator variable ops in a TFLite export.)
    x = layers.Dropout(_GRU_DROPOUT, name="crnn_gru_drop")(x)
    if crnn_pool == "frame":
        # channels_first treats axis 1 (time) as channels, so the mean runs over the features
        # of each frame: one value per temporal frame.
        x = layers.GlobalAveragePooling1D(data_format="channels_first", name="crnn_gap")(x)
    elif crnn_pool == "time":
        x = layers.GlobalAveragePooling1D(name="crnn_gap")(x)
    else:
        raise ValueError(f"crnn_pool must be 'frame' or 'time', got {crnn_pool!r}")
    return x


def _dense_head(
    x: keras.KerasTensor,
    hidden: Sequence[int],
    n_classes: int,
    width: float,
    l2: float,
    prefix: str,
) -> keras.KerasTensor:
    """Fl - ReLU - Dr(30%) blocks, then Fl - Softmax with ``n_classes`` outputs."""
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(
            scaled(units, width),
            activation="relu",
            kernel_regularizer=_regularizer(l2),
            name=f"{prefix}_fc{i}",
        )(x)
        x = layers.Dropout(_HEAD_DROPOUT, name=f"{prefix}_drop{i}")(x)
    return layers.Dense(
        int(n_classes),
        activation="softmax",
        kernel_regularizer=_regularizer(l2),
        name=f"{prefix}_out",
        dtype="float32",  # softmax and the loss stay float32 under mixed precision
    )(x)


def build_cdnn(
    n_classes: int,
    width: float = 1.0,
    input_shape: Sequence[int] = INPUT_SHAPE,
    l2: float = L2,
) -> keras.Model:
    """Build the C-DNN baseline of Table 1 (six Vg-Cv blocks, then 512 -> 1024 -> C).

    Parameters
    ----------
    n_classes : int
        Number of output classes C.
    width : float, default 1.0
        Multiplier for every conv filter count and hidden dense width (not the output layer).
    input_shape : sequence of int, default (128, 128, 1)
        Patch shape: frequency bins x time frames x channels.
    l2 : float, default 1e-4
        L2 coefficient on conv and dense kernels; 0 disables regularisation.

    Returns
    -------
    keras.Model
        Maps a batch of patches to softmax class probabilities, shape ``(batch, n_classes)``.
    """
    _check_common(n_classes, width, input_shape, l2)
    inputs = keras.Input(shape=tuple(int(d) for d in input_shape), name="patch")
    x = _cnn_part(inputs, width, l2)
    outputs = _dense_head(x, _CDNN_HEAD, n_classes, width, l2, prefix="dnn")
    return keras.Model(inputs, outputs, name="cdnn")


def build_crnn(
    n_classes: int,
    width: float = 1.0,
    input_shape: Sequence[int] = INPUT_SHAPE,
    l2: float = L2,
    unroll: bool = True,
    crnn_pool: CrnnPool = "frame",
) -> keras.Model:
    """Build the C-RNN of Table 3 as a stand-alone classifier.

    The paper only uses the C-RNN inside the joint model; on its own it gets the joint model's
    DNN-02 head (2048 -> 1024 -> C, Table 4), so it is the joint model without the CNN part.

    Parameters
    ----------
    n_classes : int
        Number of output classes C.
    width : float, default 1.0
        Multiplier for conv filters, GRU units and hidden dense widths (not the output layer).
    input_shape : sequence of int, default (128, 128, 1)
        Patch shape: frequency bins (a multiple of 8) x time frames x channels.
    l2 : float, default 1e-4
        L2 coefficient on conv, dense and GRU kernels; 0 disables regularisation.
    unroll : bool, default True
        Unroll the GRU over the fixed number of time frames. Needed for a TFLite conversion
        with builtin ops only; ``False`` uses a symbolic loop (faster to build, needs Flex).
    crnn_pool : {"frame", "time"}, default "frame"
        Re-GlAv block: average each frame's features (the paper's text) or average over time.

    Returns
    -------
    keras.Model
        Maps a batch of patches to softmax class probabilities, shape ``(batch, n_classes)``.
    """
    _check_common(n_classes, width, input_shape, l2)
    inputs = keras.Input(shape=tuple(int(d) for d in input_shape), name="patch")
    x = _crnn_part(inputs, width, l2, unroll, crnn_pool)
    outputs = _dense_head(x, _DNN02_HEAD, n_classes, width, l2, prefix="dnn02")
    return keras.Model(inputs, outputs, name="crnn")


def build_joint(
    n_classes: int,
    width: float = 1.0,
    input_shape: Sequence[int] = INPUT_SHAPE,
    l2: float = L2,
    unroll: bool = True,
    crnn_pool: CrnnPool = "frame",
) -> keras.Model:
    """Build the joint model of Fig. 4: CNN part || C-RNN -> concat 384 -> 2048 -> 1024 -> C.

    Parameters
    ----------
    n_classes : int
        Number of output classes C.
    width : float, default 1.0
        Multiplier for conv filters, GRU units and hidden dense widths (not the output layer).
    input_shape : sequence of int, default (128, 128, 1)
        Patch shape: frequency bins (a multiple of 8) x time frames x channels.
    l2 : float, default 1e-4
        L2 coefficient on conv, dense and GRU kernels; 0 disables regularisation.
    unroll : bool, default True
        Unroll the GRU (see :func:`build_crnn`).
    crnn_pool : {"frame", "time"}, default "frame"
        Re-GlAv block of the C-RNN branch (see :func:`build_crnn`).

    Returns
    -------
    keras.Model
        Maps a batch of patches to softmax class probabilities, shape ``(batch, n_classes)``.
        At width 1.0 with 10 classes: 4,801,522 parameters, 1.7996 G MACs per patch.
    """
    _check_common(n_classes, width, input_shape, l2)
    inputs = keras.Input(shape=tuple(int(d) for d in input_shape), name="patch")
    cnn = _cnn_part(inputs, width, l2)
    crnn = _crnn_part(inputs, width, l2, unroll, crnn_pool)
    x = layers.Concatenate(name="joint_concat")([cnn, crnn])
    outputs = _dense_head(x, _DNN02_HEAD, n_classes, width, l2, prefix="dnn02")
    return keras.Model(inputs, outputs, name="joint")


_BUILDERS = {"cdnn": build_cdnn, "crnn": build_crnn, "joint": build_joint}


def build_model(name: str, n_classes: int, width: float = 1.0, **kwargs: object) -> keras.Model:
    """Build one of :data:`MODELS` by name.

    Parameters
    ----------
    name : str
        ``"cdnn"``, ``"crnn"`` or ``"joint"`` (case-insensitive).
    n_classes : int
        Number of output classes.
    width : float, default 1.0
        Width multiplier (1.0 is the paper).
    **kwargs
        Passed on to the builder (``input_shape``, ``l2``; ``unroll`` and ``crnn_pool`` for the
        models with a GRU).

    Returns
    -------
    keras.Model
        The model, named ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`MODELS`.
    """
    key = str(name).strip().lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return _BUILDERS[key](n_classes, width, **kwargs)


# Gate count per recurrent cell type (GRU: update, reset, candidate).
_RNN_GATES = {"GRU": 3, "LSTM": 4, "SimpleRNN": 1}
# Layers with weights whose cost is element-wise and therefore not counted.
_FREE_WEIGHTED = ("BatchNormalization", "LayerNormalization", "Normalization")


def _shape(tensor: keras.KerasTensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


def _rnn_macs(cell_layer: keras.layers.Layer, timesteps: int, in_dim: int) -> int:
    units = int(cell_layer.units)
    gates = _RNN_GATES[type(cell_layer).__name__]
    return timesteps * gates * (in_dim * units + units * units)


def _layer_macs(layer: keras.layers.Layer) -> int:
    kind = type(layer).__name__
    if isinstance(layer, keras.Model):
        return count_macs(layer)
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        # kernel: (*k, in_c / groups, out_c); every output position costs one kernel's MACs
        # per output channel group, which works out to prod(out spatial) * prod(kernel).
        out_positions = math.prod(_shape(layer.output)[:-1])
        return out_positions * math.prod(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.Dense):
        leading = math.prod(_shape(layer.input)[:-1])  # 1 for a plain vector input
        return leading * math.prod(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.Bidirectional):
        timesteps, in_dim = _shape(layer.input)[-2:]
        return sum(
            _rnn_macs(sub, timesteps, in_dim) for sub in (layer.forward_layer, layer.backward_layer)
        )
    if kind in _RNN_GATES:
        timesteps, in_dim = _shape(layer.input)[-2:]
        return _rnn_macs(layer, timesteps, in_dim)
    if not layer.weights or kind in _FREE_WEIGHTED:
        return 0
    raise NotImplementedError(f"count_macs does not know how to cost layer {layer.name!r} ({kind})")


def count_macs(model: keras.Model) -> int:
    """Count multiply-accumulates for one input patch, analytically, layer by layer.

    Conventions: Conv (1-3 D): output positions x kernel size x in_channels/groups x filters.
    Dense: inputs x units (times any leading non-batch axes). GRU / LSTM / SimpleRNN: per time
    step ``gates * (in_dim * units + units * units)`` (3 gates for a GRU), times time steps,
    summed over both directions of a ``Bidirectional``. With Keras's default ``reset_after=True``
    the reset gate multiplies the already computed ``U_h h`` element-wise, so it adds no MACs.
    Biases, batch norm, pooling, activations, dropout, reshapes and the element-wise gate maths
    count 0. Nested models are counted recursively.

    Parameters
    ----------
    model : keras.Model
        A built model (e.g. from :func:`build_model`).

    Returns
    -------
    int
        Multiply-accumulates per single input (batch size 1).

    Raises
    ------
    NotImplementedError
        For a layer with weights whose cost this function does not know.
    """
    return sum(_layer_macs(layer) for layer in model.layers)


def describe(model: keras.Model) -> list[tuple[str, tuple[int, ...], int]]:
    """List the model's layers with their output shapes and parameter counts.

    Parameters
    ----------
    model : keras.Model
        A built functional model.

    Returns
    -------
    list of (str, tuple of int, int)
        ``(layer name, output shape without the batch axis, parameter count)`` per layer, in
        the model's layer order (the input layer included, with 0 parameters).
    """
    return [(layer.name, _shape(layer.output), int(layer.count_params())) for layer in model.layers]
