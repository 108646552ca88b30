"""Benchmark the spectrogram front-end on one thread, on 60 s of real audio.

For each spectrogram it prints, all measured in this one run:

* streaming cost: CPU seconds per second of audio, pushing 1024-sample blocks (a typical
  microphone callback; ``--block N`` for another size, e.g. 32768, what the engine pushes
  once per patch) through :class:`~edge_asc.features.FeatureStream`;
* incremental update: the CPU cost of one new hop (256 samples) in a warm stream, against
  recomputing the whole 3 s window with librosa, as a ratio;
* the largest difference between the streamed and the batch spectrogram.

The last line sums it up. Run it by hand (it is not a test)::

    python benchmarks/bench_features.py [--seconds 60] [--data ../shared/data]

``--against DIR`` compares this tree's front-end with another checkout of the repository
(for instance ``git worktree add /tmp/before <commit>``) in the same run: the streaming cost
of each spectrogram, of all five together and of the default model's set at 22.05 kHz is
measured in child processes, one per tree, alternating for ``--rounds`` rounds on the same
samples, and printed side by side with the speed-up (best round of each). Nothing of the
other tree is copied here; it only has to provide :class:`FeatureStream`. ``--block`` and
``--against-block`` set each tree's push size.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread, set before numpy loads its BLAS

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from edge_asc.audio import load_audio  # noqa: E402
from edge_asc.features import (  # noqa: E402
    KINDS,
    FeatureConfig,
    FeatureStream,
    compute_many,
    filterbanks,
)

REPO = Path(__file__).resolve().parents[1]
BLOCK = 1024
WINDOW_S = 3.0


def real_audio(data_dir: Path, seconds: float, sample_rate: int) -> np.ndarray:
    """Concatenate ESC-10 clips (one class after another) until ``seconds`` are reached."""
    with open(data_dir / "esc10" / "manifest.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (r["fold"], r["label"], r["filename"]))
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    order = [r for group in zip(*by_label.values(), strict=False) for r in group]
    parts, total = [], 0
    for row in order:
        clip = load_audio(data_dir / "esc10" / row["filename"], sample_rate)
        parts.append(clip)
        total += clip.size
        if total >= seconds * sample_rate:
            break
    return np.concatenate(parts)[: int(seconds * sample_rate)]


def cpu_seconds(fn: Callable[[], object], repeat: int = 1) -> float:
    """Mean CPU (process) time of ``fn()`` over ``repeat`` calls."""
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def librosa_window(kind: str, window: np.ndarray, config: FeatureConfig) -> Callable[[], object]:
    """Recompute ``kind`` over a whole window with librosa (the non-incremental way)."""
    import librosa

    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length

    def power() -> np.ndarray:
        spec = librosa.stft(
            window,
            n_fft=n_fft,
            hop_length=hop,
            win_length=config.win_length,
            window="hamming",
            center=True,
        )
        return np.abs(spec) ** 2

    linear = filterbanks.linear_bands(config)
    gamma = filterbanks.gammatone_bank(config)

    def stft() -> object:
        return librosa.power_to_db(linear @ power(), amin=config.amin, top_db=None)

    def logmel() -> object:
        mel = librosa.feature.melspectrogram(
            S=power(),
            sr=sr,
            n_mels=config.n_bins,
            fmin=config.fmin,
            fmax=config.band_fmax,
            htk=True,
            norm="slaney",
        )
        return librosa.power_to_db(mel, amin=config.amin, top_db=None)

    def mfcc() -> object:
        cepstra = librosa.feature.mfcc(S=logmel(), n_mfcc=config.n_mfcc)
        return np.vstack([cepstra, librosa.feature.delta(cepstra, width=3, mode="nearest")])

    def gam() -> object:
        return librosa.amplitude_to_db(gamma @ np.sqrt(power()), amin=config.amin, top_db=None)

    def cqt() -> object:
        spec = librosa.cqt(
            window,
            sr=sr,
            hop_length=hop,
            fmin=config.cqt_fmin,
            n_bins=config.n_bins,
            bins_per_octave=config.bins_per_octave,
            window="hamming",
        )
        return librosa.amplitude_to_db(np.abs(spec), amin=config.amin, top_db=None)

    return {"stft": stft, "logmel": logmel, "mfcc": mfcc, "gam": gam, "cqt": cqt}[kind]


def stream_all(
    kinds: str | tuple[str, ...], signal: np.ndarray, config: FeatureConfig, block: int = BLOCK
):
    """Push ``signal`` in ``block``-sample blocks; return (CPU s, streamed spectrograms)."""
    stream = FeatureStream(kinds, config)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in stream.kinds}
    start = time.process_time()
    for i in range(0, signal.size, block):
        for kind, frames in stream.push(signal[i : i + block]).items():
            parts[kind].append(frames)
    elapsed = time.process_time() - start
    return elapsed, {k: np.concatenate(v, axis=1) for k, v in parts.items()}


def one_hop_cost(kind: str, signal: np.ndarray, config: FeatureConfig, hops: int = 800) -> float:
    """Mean CPU cost of one new hop in a stream already warmed with 3 s of audio."""
    stream = FeatureStream(kind, config)
    warm = int(WINDOW_S * config.sample_rate)
    stream.push(signal[:warm])
    hop = config.hop_length
    tail = signal[warm : warm + hops * hop]
    start = time.process_time()
    for i in range(hops):
        stream.push(tail[i * hop : (i + 1) * hop])
    return (time.process_time() - start) / hops


MODEL_RATE = 22050
MODEL_KINDS = ("logmel", "cqt", "gam")  # the shipped default model's spectrograms
COMPARED: tuple[tuple[str, tuple[str, ...], int], ...] = (
    *((kind, (kind,), 44100) for kind in KINDS),
    ("all five", KINDS, 44100),
    ("default model (22.05 kHz)", MODEL_KINDS, MODEL_RATE),
)


def worker(audio: Path, block: int) -> None:
    """Child process: streaming cost of every set in COMPARED, as JSON on stdout.

    Each set is measured twice, in two passes over all of them, and the cheaper pass kept:
    the set measured first in a fresh process otherwise pays its start-up (first calls,
    first page faults), which made the first row (stft) look dearer than the same work in
    the next one (logmel).
    """
    samples = np.load(audio)
    costs: dict[str, float] = {}
    for _ in range(2):
        for label, kinds, rate in COMPARED:
            signal = samples[f"rate{rate}"]
            cost, _ = stream_all(kinds, signal, FeatureConfig(sample_rate=rate), block)
            costs[label] = min(cost / (signal.size / rate), costs.get(label, np.inf))
    print(json.dumps(costs))


def compare(other: Path, data: Path, seconds: float, rounds: int, blocks: dict[str, int]) -> None:
    """Measure this tree and ``other`` alternately in child processes; print side by side.

    ``blocks`` gives each tree's push size (``this tree``, ``other``): the engine now feeds
    the front-end a patch's worth of audio at a time where it used to push every source
    block, so the runtime's cost is this tree at its push size against the other at 1024.
    """
    trees = {"this tree": REPO, "other": other.resolve()}
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "audio.npz"
        np.savez(
            audio,
            **{f"rate{r}": real_audio(data, seconds, r) for r in {rate for *_, rate in COMPARED}},
        )
        best: dict[str, dict[str, float]] = {name: {} for name in trees}
        for _ in range(rounds):
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        str(audio),
                        "--block",
                        str(blocks[name]),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                for label, cost in json.loads(out).items():
                    best[name][label] = min(cost, best[name].get(label, np.inf))
    print(
        f"{seconds:.0f} s of real audio, one thread, best of {rounds} alternating rounds; "
        f"this tree in {blocks['this tree']}-sample blocks, other = {other} in "
        f"{blocks['other']}-sample blocks"
    )
    print(f"{'spectrograms':27s} {'this CPU-s/s':>13s} {'other CPU-s/s':>14s} {'speed-up':>9s}")
    for label, *_ in COMPARED:
        mine, theirs = best["this tree"][label], best["other"][label]
        print(f"{label:27s} {mine:13.4f} {theirs:14.4f} {theirs / mine:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block", type=int, default=BLOCK, help="samples per push")
    parser.add_argument("--against-block", type=int, default=BLOCK, help="the other's push")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.block)
        return
    if args.against:
        blocks = {"this tree": args.block, "other": args.against_block}
        compare(args.against, args.data, args.seconds, args.rounds, blocks)
        return
    config = FeatureConfig()
    signal = real_audio(args.data, args.seconds, config.sample_rate)
    seconds = signal.size / config.sample_rate
    window = signal[: int(WINDOW_S * config.sample_rate)]
    print(
        f"{seconds:.1f} s of real ESC-10 audio at {config.sample_rate} Hz, one thread, "
        f"{args.block}-sample blocks, hop {config.hop_length}"
    )
    print(
        f"{'kind':7s} {'stream CPU-s/s':>15s} {'1 hop (ms)':>11s} {'librosa 3 s (ms)':>17s}"
        f" {'ratio':>7s} {'max |stream-batch| dB':>22s}"
    )
    ratios = {}
    for kind in KINDS:
        cost, streamed = stream_all(kind, signal, config, args.block)
        batch = compute_many(signal, kind, config)[kind]
        error = float(np.max(np.abs(streamed[kind] - batch)))
        hop_cost = one_hop_cost(kind, signal, config)
        recompute = librosa_window(kind, window, config)
        recompute()  # warm librosa's caches (filter banks, FFT plans)
        full_cost = cpu_seconds(recompute, repeat=5)
        ratios[kind] = full_cost / hop_cost
        print(
            f"{kind:7s} {cost / seconds:15.4f} {hop_cost * 1e3:11.3f} {full_cost * 1e3:17.1f}"
            f" {ratios[kind]:6.0f}x {error:22.2e}"
        )
    combined, _ = stream_all(KINDS, signal, config, args.block)
    worst = min(ratios, key=ratios.get)
    print(
        f"summary: worst incremental ratio {ratios[worst]:.0f}x ({worst}); all five together "
        f"{combined / seconds:.4f} CPU-s per s of audio on one thread (shared STFT)"
    )


if __name__ == "__main__":
    main()
