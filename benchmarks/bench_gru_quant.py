"""Per-patch latency of the joint model's quantization modes, side by side, GRU included.

Run by hand::

    python benchmarks/bench_gru_quant.py [--widths 0.25,1.0] [--rounds 5]

For each width, one joint model (seeded random weights: latency does not depend on the
values) is converted to float32, dynamic range, full int8, and int8 with the recurrent part
kept in float32 (``int8-gru-float``: the GRU's output tensors are denylisted from
quantization through TFLite's QuantizationDebugger, so the convolutions run int8 and the
unrolled GRU runs as float ops XNNPACK takes). Every model runs one patch at a time on one
interpreter thread, in alternating rounds; the table gives the median per-patch time and the
speed-up over float32. Accuracy is not measured here (random weights): see the export table
of a trained run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def _convert(model, mode: str, representative: np.ndarray) -> bytes:
    import tensorflow as tf

    from edge_asc.export.convert import strip_names, to_tflite

    if mode != "int8-gru-float":
        return to_tflite(model, mode, representative)

    @tf.function(input_signature=[tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)])
    def classify(patch):
        return model(patch, training=False)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def samples():
        for patch in representative:
            yield [patch[None, ..., None].astype(np.float32)]

    converter.representative_dataset = samples
    # Tensor names from an unstripped float conversion (to_tflite strips them).
    plain = tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()])
    float_model = tf.lite.Interpreter(model_content=plain.convert())
    names = [d["name"] for d in float_model.get_tensor_details()]
    gru = [n for n in names if "crnn_gru" in n and "drop" not in n]
    print(f"  int8-gru-float: {len(gru)} of {len(names)} tensors kept in float32")
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=gru)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=samples, debug_options=options
    )
    return strip_names(debugger.get_nondebug_quantized_model())


def _time(model_bytes: bytes, patch: np.ndarray, runs: int) -> float:
    from edge_asc.backends.tflite import TFLiteModel

    model = TFLiteModel(model_bytes, threads=1)
    model.predict(patch)
    start = time.perf_counter()
    for _ in range(runs):
        model.predict(patch)
    return (time.perf_counter() - start) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="0.25,1.0")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="patches per model per round")
    args = parser.parse_args()

    import keras

    from edge_asc.export.convert import export_graph
    from edge_asc.train.models import build_model

    rng = np.random.default_rng(0)
    representative = rng.normal(size=(20, 128, 128)).astype(np.float32)
    patch = representative[:1]
    modes = ("float32", "dynamic", "int8", "int8-gru-float")
    print("width  mode            KiB    ms/patch  speed-up vs float32")
    for width in (float(w) for w in args.widths.split(",")):
        keras.utils.set_random_seed(0)
        graph = export_graph(build_model("joint", 10, width=width, unroll=False))
        blobs = {mode: _convert(graph, mode, representative) for mode in modes}
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.rounds):
            for mode in modes:
                times[mode].append(_time(blobs[mode], patch, args.runs))
        base = float(np.median(times["float32"]))
        for mode in modes:
            median = float(np.median(times[mode]))
            print(
                f"{width:<6g} {mode:<15} {len(blobs[mode]) / 1024:6.0f} "
                f"{1000 * median:9.2f}  {base / median:5.2f}x"
            )


if __name__ == "__main__":
    main()
