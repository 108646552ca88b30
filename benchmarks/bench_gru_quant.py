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
    args = parser.parse_args()
    widths = [float(w) for w in args.widths.split(",")]
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
