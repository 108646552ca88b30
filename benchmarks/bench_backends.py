"""Benchmark the two inference backends side by side: TFLite against ONNX Runtime.

For each spectrogram model of a bundle it prints the median single-patch latency of the
TFLite model (the bundle's quantization) and of the float32 ONNX model, with 1 and 2
threads, and their ratio; then the real-time factor of the whole pipeline (`edge-asc bench`)
on each backend. The two are measured alternately in this one run, so the ratios hold on a
shared, noisy machine. On a machine with a GPU and onnxruntime-gpu, ONNX Runtime runs on
TensorRT / CUDA; elsewhere on the CPU. Run it by hand (it is not a test)::

    python benchmarks/bench_backends.py [--model BUNDLE] [--seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_asc.audio import load_audio
from edge_asc.backends import open_model
from edge_asc.bench import run_bench
from edge_asc.bundle import load_bundle
from edge_asc.cli import default_model

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="bundle (default: shipped)")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per pipeline run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()

    bundle = load_bundle(args.model or default_model())
    if not all(m.has_onnx for m in bundle.models.values()):
        raise SystemExit("bench_backends: the bundle has no ONNX models (export with --onnx)")
    rate = next(iter(bundle.models.values())).features.sample_rate
    examples = sorted((REPO / "examples").glob("*.flac"))
    audio = np.concatenate([load_audio(p, rate) for p in examples])

    print(f"bundle {bundle.path.name}: {', '.join(bundle.models)}, {bundle.quantization}")
    print(f"{'model':8s} {'threads':>7s} {'tflite ms':>10s} {'onnx ms':>10s} {'onnx/tflite':>12s}")
    for kind, member in bundle.models.items():
        for threads in (1, 2):
            models = {b: open_model(member, b, threads=threads) for b in ("tflite", "onnx")}
            times: dict[str, list[float]] = {b: [] for b in models}
            for _ in range(args.repeats):
                for backend, model in models.items():
                    times[backend].append(model.latency(repeats=20))
            t, o = (1e3 * float(np.median(times[b])) for b in ("tflite", "onnx"))
            print(f"{kind:8s} {threads:7d} {t:10.2f} {o:10.2f} {o / t:12.2f}")

    rtf: dict[str, list[float]] = {"tflite": [], "onnx": []}
    names: dict[str, str] = {}
    for _ in range(args.repeats):
        for backend in rtf:
            report = run_bench(bundle, audio, seconds=args.seconds, backend=backend)
            rtf[backend].append(report["real_time_factor"]["total"])
            names[backend] = report["backend"]
    t, o = (float(np.median(rtf[b])) for b in ("tflite", "onnx"))
    print(f"pipeline real-time factor over {args.seconds:.0f} s of audio (median of rounds):")
    print(f"  {names['tflite']}: {t:.4f}   {names['onnx']}: {o:.4f}   onnx/tflite {o / t:.2f}")


if __name__ == "__main__":
    main()
