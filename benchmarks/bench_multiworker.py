"""Benchmark multi-worker training: patches/s with 1 and 2 workers, and the input's own rate.

Each worker is a real process in a MultiWorkerMirroredStrategy cluster on 127.0.0.1 (ports
chosen free at run time), training as ``edge-asc train --strategy multiworker`` does
(:func:`edge_asc.train.training.train_model`: oversampling, mixup, the sharded input
pipeline) on synthetic patches of the real shape. The training rate is the chief's
``patches_per_s`` (global patches, every worker's share counted) averaged over the epochs after
the first, which includes tracing. The input rate is the pipeline alone, per worker: its shard
gathered, mixed and passed through ``tf.data`` with prefetch, with no model. When the input
rate is not well above the training rate per worker, training is input-bound.

On a machine with GPUs each worker sees one (``CUDA_VISIBLE_DEVICES`` = its index) unless
``--cpu``; on CPUs the cores are split between the workers (intra-op threads). Run it by hand
(it is not a test)::

    python benchmarks/bench_multiworker.py [--workers 1,2] [--width 0.25] [--epochs 3] [--cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_CLASSES = 10


def _patches(n: int, seed: int = 0):
    from edge_asc.train.training import PatchSet

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 128, 128)).astype(np.float32)
    y = np.arange(n) % N_CLASSES
    return PatchSet(x, y, np.arange(n))


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _count_gpus() -> int:
    """GPUs on this machine (by nvidia-smi, so this process never initialises CUDA)."""
    try:
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return 0
    return found.stdout.count("GPU ")


def worker(args: dict) -> None:
    """One worker process: train on synthetic patches, the chief writes history.csv."""
    import tensorflow as tf

    if args["threads"]:  # CPU: the cores split between the workers
        tf.config.threading.set_intra_op_parallelism_threads(args["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(max(2, args["threads"]))
    from edge_asc.train.training import TrainConfig, train_model

    config = TrainConfig(
        model=args["model"],
        width=args["width"],
        epochs=args["epochs"],
        batch_size=args["batch_size"],
        mixed_precision="auto",
        strategy="multiworker",
    )
    train_model(_patches(args["patches"]), None, N_CLASSES, config, Path(args["out"]), verbose=0)


def run_cluster(n: int, opts: argparse.Namespace, gpus: int) -> tuple[float, float]:
    """Train with ``n`` workers; returns (patches/s after the first epoch, wall seconds)."""
    ports = _free_ports(n)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-mw-") as tmp:
        procs = []
        start = time.perf_counter()
        try:
            for i in range(n):
                spec = {
                    "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                    "task": {"type": "worker", "index": i},
                }
                env = {**os.environ, "TF_CONFIG": json.dumps(spec), "TF_CPP_MIN_LOG_LEVEL": "2"}
                env["CUDA_VISIBLE_DEVICES"] = str(i % gpus) if gpus and not opts.cpu else ""
                args = {
                    "model": opts.model,
                    "width": opts.width,
                    "epochs": opts.epochs,
                    "batch_size": opts.batch_size,
                    "patches": opts.patches,
                    "threads": max(1, cores // n) if not gpus or opts.cpu else 0,
                    "out": str(Path(tmp) / "run"),
                }
                procs.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "--worker", json.dumps(args)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                        start_new_session=True,
                    )
                )
            for p in procs:
                _, err = p.communicate(timeout=opts.timeout)
                if p.returncode != 0:
                    raise SystemExit(f"a worker failed:\n{err[-3000:]}")
        finally:
            for p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, 9)
        wall = time.perf_counter() - start
        with open(Path(tmp) / "run" / "history.csv", newline="") as f:
            rates = [float(row["patches_per_s"]) for row in csv.DictReader(f)]
    return float(np.mean(rates[1:] if len(rates) > 1 else rates)), wall


def input_rate(n: int, opts: argparse.Namespace) -> float:
    """Patches/s of one worker's input pipeline (its shard of ``n``) through tf.data."""
    import tensorflow as tf

    from edge_asc.train.training import TrainConfig, replica_batches, steps_per_epoch

    patches = _patches(opts.patches)
    config = TrainConfig(batch_size=opts.batch_size)
    dataset = tf.data.Dataset.from_generator(
        lambda: replica_batches(patches, N_CLASSES, config, 0, n, (0,)),
        output_signature=(
            tf.TensorSpec((None, 128, 128, 1), tf.float32),
            tf.TensorSpec((None, N_CLASSES), tf.float32),
        ),
    ).prefetch(tf.data.AUTOTUNE)
    steps = 2 * steps_per_epoch(patches.y, N_CLASSES, config)
    iterator = iter(dataset)
    next(iterator)
    rows, start = 0, time.perf_counter()
    for _ in range(steps):
        x, _ = next(iterator)
        rows += int(x.shape[0])
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--model", default="joint", help="cdnn, crnn or joint")
    parser.add_argument("--width", type=float, default=0.25, help="width multiplier")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is tracing)")
    parser.add_argument("--batch-size", type=int, default=50, help="global batch size")
    parser.add_argument("--patches", type=int, default=500, help="synthetic training patches")
    parser.add_argument("--cpu", action="store_true", help="hide GPUs from the workers")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per cluster")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        worker(json.loads(opts.worker))
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the input-rate runs below: host only
    import tensorflow as tf

    gpus = 0 if opts.cpu else _count_gpus()
    counts = [int(n) for n in opts.workers.split(",")]
    device = f"{gpus} GPU(s)" if gpus and not opts.cpu else f"CPU, {os.cpu_count()} cores"
    print(
        f"{opts.model} width {opts.width}, global batch {opts.batch_size}, {opts.patches} "
        f"synthetic patches, {opts.epochs} epochs, {device}, TF {tf.__version__}"
    )
    header = f"{'workers':>7}  {'train patches/s':>15}  {'x 1 worker':>10}  "
    header += f"{'input patches/s per worker':>26}  {'wall s':>6}"
    print(header)
    base = None
    for n in counts:
        rate, wall = run_cluster(n, opts, gpus)
        base = base or rate
        feed = input_rate(n, opts)
        print(f"{n:>7}  {rate:>15.1f}  {rate / base:>10.2f}  {feed:>26.1f}  {wall:>6.0f}")


if __name__ == "__main__":
    main()
