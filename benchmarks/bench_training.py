"""Benchmark training throughput (patches per second) of the paper's models at several widths.

Each model is built and compiled as ``edge-asc train`` does (joint model, KL-divergence loss,
Adam, batch 50, the rolled GRU), warmed up, then timed over a number of training steps on
random patches; the widths are measured alternately in this one run and printed with their
ratio to the first, so the figures hold on a shared machine. On a GPU, TensorFlow uses it
(with mixed precision, as training does). Run it by hand (it is not a test)::

    python benchmarks/bench_training.py [--model joint] [--widths 0.25,1.0] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="joint", help="cdnn, crnn or joint")
    parser.add_argument("--widths", default="0.25,1.0", help="comma list of width multipliers")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from edge_asc.train.models import build_model
    from edge_asc.train.training import use_mixed_precision

    mixed = use_mixed_precision("auto")
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size, 128, 128, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch_size)]
    widths = [float(w) for w in args.widths.split(",")]
    models = {}
    for width in widths:
        extra = {"unroll": False} if args.model != "cdnn" else {}
        model = build_model(args.model, 10, width=width, **extra)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.KLDivergence(),
            jit_compile=False,
        )
        model.train_on_batch(x, y)  # traces the step function
        models[width] = model
    times: dict[float, list[float]] = {w: [] for w in widths}
    for _ in range(args.rounds):
        for width, model in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            times[width].append(time.perf_counter() - start)
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"{args.model}, batch {args.batch_size}, {device}, mixed precision {mixed}")
    print(f"{'width':>6s} {'patches/s':>10s} {'vs first':>9s}")
    first = None
    for width in widths:
        rate = args.steps * args.batch_size / float(np.median(times[width]))
        first = first or rate
        print(f"{width:6.3g} {rate:10.1f} {rate / first:9.3f}")


if __name__ == "__main__":
    main()
