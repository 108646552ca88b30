"""Per-patch latency of the joint model's quantization modes, side by side, GRU included.

Run by hand::

    python benchmarks/bench_gru_quant.py [--widths 0.25,1.0] [--rounds 5] [--against DIR]

For each width, one joint model (seeded random weights: latency does not depend on the
values) is converted to float32, dynamic range, full int8, and int8 with the recurrent part
kept in float32 (``int8-gru-float``: the GRU's output tensors are denylisted from
quantization through TFLite's QuantizationDebugger, so the convolutions run int8 and the
unrolled GRU runs as float ops XNNPACK takes). Every model runs one patch at a time on one
interpreter thread, in alternating rounds; the table gives the median per-patch time and the
speed-up over float32. Accuracy is not measured here (random weights): see the export table
of a trained run.

``--parts`` times the joint model's parts alone instead (the CNN branch, the C-RNN's
convolutions, the bidirectional GRU, the dense head, and the CNN's second convolution, the
7x7 one on 32 channels, alone), in float32, dynamic range and int8, with their multiply-adds
per millisecond: where int8 gains or loses against dynamic range, and whether it is the
arithmetic kernels themselves (the lone convolution) or the operators around them.

``--against DIR`` converts the same models a second time with another checkout's export code
(for instance ``git worktree add /tmp/before <commit>``), in a child process, and times both
trees' models in the same alternating rounds: before and after a change, in one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]


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


def convert_all(widths: list[float], out: Path) -> None:
    """Write every width's model in every mode to ``out/<width>-<mode>.tflite``."""
    import keras

    from edge_asc.export.convert import export_graph
    from edge_asc.train.models import build_model

    representative = np.random.default_rng(0).normal(size=(20, 128, 128)).astype(np.float32)
    for width in widths:
        keras.utils.set_random_seed(0)
        graph = export_graph(build_model("joint", 10, width=width, unroll=False))
        for mode in MODES:
            (out / f"{width:g}-{mode}.tflite").write_bytes(_convert(graph, mode, representative))


MODES = ("float32", "dynamic", "int8", "int8-gru-float")
PART_MODES = ("float32", "dynamic", "int8")


def part_models(width: float) -> dict[str, tuple[object, tuple[int, int], int]]:
    """The joint model's parts as models of their own: name -> (model, input shape, MACs).

    Every part takes a ``(1, a, b, 1)`` input, as :func:`to_tflite` feeds it; parts that start
    inside the network reshape it to what their first layer takes. Seeded random weights.
    """
    import keras

    from edge_asc.export.convert import export_graph
    from edge_asc.export.unrolled_gru import UnrolledBiGRU
    from edge_asc.train.models import build_model, count_macs

    keras.utils.set_random_seed(0)
    trained = build_model("joint", 10, width=width, unroll=False)
    graph = export_graph(trained)

    def layer_copy(name: str):
        old = graph.get_layer(name)
        return old.__class__.from_config(old.get_config()), old

    def tail(shape: tuple[int, ...], names: list[str]):
        flat = (shape[0], int(np.prod(shape[1:])))
        inp = keras.Input((*flat, 1))
        x = keras.layers.Reshape(shape)(inp)
        pairs = []
        for name in names:
            new, old = layer_copy(name)
            x = new(x)
            pairs.append((new, old))
        for new, old in pairs:
            new.set_weights(old.get_weights())
        model = keras.Model(inp, x)
        return model, flat, count_macs(model)

    steps, features = graph.get_layer("crnn_reshape").output.shape[1:]
    gru_in = keras.Input((steps, features, 1))
    gru = UnrolledBiGRU(graph.get_layer("crnn_gru").units)  # seeded random weights
    sequence = keras.layers.Reshape((steps, features))(gru_in)
    gru_out = keras.layers.GlobalAveragePooling1D()(gru(sequence))
    conv2_in = tuple(graph.get_layer("cnn_conv2").input.shape[1:])
    concat = graph.get_layer("joint_concat").output.shape[-1]

    def macs_up_to(name: str) -> int:
        """count_macs of the trained model (Keras's own GRU) from its input to ``name``."""
        return count_macs(keras.Model(trained.input, trained.get_layer(name).output))

    gru_macs = macs_up_to("crnn_gru") - macs_up_to("crnn_reshape")

    def head(name: str):
        model = keras.Model(graph.input, graph.get_layer(name).output)
        return model, (128, 128), count_macs(model)

    return {
        "CNN branch": head("cnn_drop6"),
        "C-RNN convolutions": head("crnn_drop4"),
        "bi-GRU": (keras.Model(gru_in, gru_out), (steps, features), gru_macs),
        "dense head": tail((1, concat), ["dnn02_fc1", "dnn02_fc2", "dnn02_out"]),
        "CNN conv2 alone": tail(conv2_in, ["cnn_conv2"]),
        "whole model": (graph, (128, 128), count_macs(trained)),
    }


def time_parts(widths: list[float], rounds: int, runs: int) -> None:
    """Print every part's per-patch time and multiply-add rate in each mode."""
    blobs: dict[tuple[float, str, str], bytes] = {}
    macs: dict[tuple[float, str], int] = {}
    rng = np.random.default_rng(0)
    for width in widths:
        for name, (model, shape, part_macs) in part_models(width).items():
            macs[width, name] = part_macs
            representative = rng.normal(size=(20, *shape)).astype(np.float32)
            for mode in PART_MODES:
                blobs[width, name, mode] = _convert(model, mode, representative)
    times: dict[tuple[float, str, str], list[float]] = {key: [] for key in blobs}
    for _ in range(rounds):
        for key, blob in blobs.items():
            times[key].append(_time_raw(blob, runs))
    print("width  part                mode       ms/patch  M MACs  G MAC/s  int8 vs dynamic")
    for (width, name, mode), values in times.items():
        median = float(np.median(values))
        dynamic = float(np.median(times[width, name, "dynamic"]))
        versus = f"{dynamic / median:5.2f}x" if mode == "int8" else ""
        print(
            f"{width:<6g} {name:<19} {mode:<9} {1000 * median:9.3f} {macs[width, name] / 1e6:7.1f} "
            f"{macs[width, name] / median / 1e9:8.0f}  {versus}"
        )


def _time_raw(model_bytes: bytes, runs: int) -> float:
    """Seconds per invocation of any single-input model on one thread (zeros in)."""
    from edge_asc.backends.tflite import interpreter_class

    interpreter = interpreter_class()[0](model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    start = time.perf_counter()
    for _ in range(runs):
        interpreter.invoke()
    return (time.perf_counter() - start) / runs


CHILD = r"""
import sys
from pathlib import Path
tree, script, out, widths = sys.argv[1:5]
sys.path.insert(0, tree)
import edge_asc
edge_asc.__path__.append(tree)  # edge_asc.export and edge_asc.train: the tree's export/, train/
sys.path.insert(0, str(Path(script).parent))
import bench_gru_quant
import edge_asc.export.unrolled_gru as gru
assert Path(gru.__file__).resolve().is_relative_to(Path(tree).resolve()), gru.__file__
bench_gru_quant.convert_all([float(w) for w in widths.split(",")], Path(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="0.25,1.0")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="patches per model per round")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--parts", action="store_true", help="time the model's parts alone")
    args = parser.parse_args()
    widths = [float(w) for w in args.widths.split(",")]
    if args.parts:
        time_parts(widths, args.rounds, args.runs)
        return
    trees = {"this tree": REPO} | ({str(args.against): args.against} if args.against else {})
    patch = np.random.default_rng(0).normal(size=(1, 128, 128)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        blobs: dict[tuple[str, float, str], bytes] = {}
        for name, tree in trees.items():
            out = Path(tmp) / str(len(blobs))
            out.mkdir()
            if tree == REPO:
                convert_all(widths, out)
            else:
                subprocess.run(
                    [sys.executable, "-c", CHILD, str(tree), __file__, str(out), args.widths],
                    check=True,
                    cwd=tree,
                )
            for width in widths:
                for mode in MODES:
                    blobs[name, width, mode] = (out / f"{width:g}-{mode}.tflite").read_bytes()
        times: dict[tuple[str, float, str], list[float]] = {key: [] for key in blobs}
        for _ in range(args.rounds):
            for key, blob in blobs.items():
                times[key].append(_time(blob, patch, args.runs))
    print("code        width  mode            KiB    ms/patch  speed-up vs float32")
    for (name, width, mode), values in times.items():
        base = float(np.median(times[name, width, "float32"]))
        median = float(np.median(values))
        print(
            f"{name:<11} {width:<6g} {mode:<15} {len(blobs[name, width, mode]) / 1024:6.0f} "
            f"{1000 * median:9.2f}  {base / median:5.2f}x"
        )


if __name__ == "__main__":
    main()
