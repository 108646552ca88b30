"""Keras model to TFLite flatbuffer, in the four quantization modes, builtin ops only.

Models train with a rolled GRU (fast, cuDNN on a GPU); a rolled GRU converts to TFLite only
through ``TensorListReserve``, a Select-TF (Flex) op the plain runtime lacks. So the graph is
rebuilt here with the GRU written out over the patch's fixed 128 frames
(:mod:`edge_asc.export.unrolled_gru`), the trained weights are copied in unchanged, and the
converter is limited to TFLite's builtin operators: a model that would need anything else
fails to convert instead of failing on the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edge_asc.bundle import QUANTIZATIONS
from edge_asc.errors import EdgeAscError
from edge_asc.export.blocked_conv import blocked_wide_convolutions
from edge_asc.export.integer_form import integer_form
from edge_asc.export.unrolled_gru import UnrolledBiGRU

# QUANTIZATIONS (one definition, the bundle's): float32: no quantization; float16: float16
# weights; dynamic: int8 weights, float activations; int8: full integer (weights,
# activations, input and output).
__all__ = ["QUANTIZATIONS", "ConversionError", "export_graph", "to_tflite"]


class ConversionError(EdgeAscError):
    """A model that cannot become a builtin-only TFLite model; one line."""


def export_graph(model):
    """The same network for conversion: its GRU written out step by step, same weights.

    Parameters
    ----------
    model : keras.Model
        A trained patch classifier (see :mod:`edge_asc.train.models`).

    Returns
    -------
    keras.Model
        A copy whose bidirectional GRU is an :class:`UnrolledBiGRU` holding the same
        weights (the other layers are cloned unchanged).
    """
    import keras

    def clone(layer):
        if isinstance(layer, keras.layers.Bidirectional):
            gru = layer.forward_layer
            keras_gru = (gru.activation.__name__, gru.recurrent_activation.__name__)
            if (
                not isinstance(gru, keras.layers.GRU)
                or not gru.reset_after
                or keras_gru
                != (
                    "tanh",
                    "sigmoid",
                )
            ):
                raise ConversionError(f"{layer.name}: only Keras's default GRU can be unrolled")
            return UnrolledBiGRU(gru.units, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    rebuilt = keras.models.clone_model(model, clone_function=clone)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def to_tflite(model, mode: str, representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras patch classifier to a TFLite flatbuffer.

    Parameters
    ----------
    model : keras.Model
        An export graph (see :func:`export_graph`); input ``(None, bins, frames, 1)``.
    mode : str
        One of :data:`QUANTIZATIONS`.
    representative : numpy.ndarray, optional
        ``(n, bins, frames)`` normalised training patches; required for ``int8``, where
        they calibrate the activation ranges.

    Returns
    -------
    bytes
        The ``.tflite`` model.
    """
    import tensorflow as tf

    if mode not in QUANTIZATIONS:
        raise ConversionError(f"unknown quantization {mode!r}; choose from {QUANTIZATIONS}")
    if mode == "int8" and (representative is None or not len(representative)):
        raise ConversionError("int8 quantization needs representative training patches")
    if mode == "int8":
        model = integer_form(model)  # one XNNPACK partition in int8 (see its module)
    model = blocked_wide_convolutions(model)  # XNNPACK's memory (see its module)
    input_shape = (1, *model.input_shape[1:])  # one patch per call, as the device runs it

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32)])
    def classify(patch):
        return model(patch, training=False)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode in ("float16", "dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        data = np.asarray(representative, dtype=np.float32)

        def samples() -> Iterator[list[np.ndarray]]:
            for patch in data:
                yield [patch[None, ..., None]]

        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # the converter raises many types, all meaning "cannot"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"TFLite conversion ({mode}) failed: {first}") from None
    return strip_names(flatbuffer)


def strip_names(flatbuffer: bytes) -> bytes:
    """Drop tensor and operator names (debug strings) from a TFLite model.

    The unrolled GRU has thousands of tensors whose long fused names would otherwise take
    more room than an int8 model's weights.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
