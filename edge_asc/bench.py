"""Measuring the whole runtime pipeline on this machine (``edge-asc bench``).

Reports, in the spirit of DCASE's ``complexity.json``: the arithmetic of the spectrograms
and of the models per second of audio, the real-time factor split into features and
inference, the latency from a patch's last sample to the label update, and memory. Audio is
pushed through :class:`~edge_asc.engine.StreamingClassifier` and
:class:`~edge_asc.tracker.SceneTracker` in microphone-sized blocks, as ``listen`` does, as
fast as the machine allows.
"""

from __future__ import annotations

import math
import platform
import resource
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_asc import __version__
from edge_asc.bundle import Bundle
from edge_asc.engine import StreamingClassifier
from edge_asc.features import FeatureConfig, timing
from edge_asc.features.cqt import cqt_plan
from edge_asc.tracker import SceneTracker


def _fft_macs(n: int) -> float:
    """Approximate real multiply-accumulates of one real FFT of size ``n``."""
    return 2.5 * n * math.log2(n)


def feature_macs_per_second(kinds: Sequence[str], config: FeatureConfig) -> dict[str, float]:
    """Approximate multiply-accumulates per second of audio of each spectrogram.

    The shared STFT (window, FFT, power) is counted once, under ``stft_shared``. Filter
    banks are counted as the dense matrix products the code performs; the CQT as its
    decimation filters plus its kernel products at each rate.
    """
    frames_per_s = config.sample_rate / config.hop_length
    bins = config.n_fft // 2 + 1
    out: dict[str, float] = {}
    if set(kinds) & {"stft", "logmel", "mfcc", "gam"}:
        out["stft_shared"] = frames_per_s * (config.n_fft + _fft_macs(config.n_fft) + 2 * bins)
    bank = config.n_bins * bins
    for kind in kinds:
        if kind in ("stft", "logmel"):
            out[kind] = frames_per_s * bank
        elif kind == "mfcc":
            out[kind] = frames_per_s * (bank + _fft_macs(2 * config.n_bins) + config.n_bins)
        elif kind == "gam":
            out[kind] = frames_per_s * (bank + bins)
        elif kind == "cqt":
            plan = cqt_plan(config)
            taps = plan.half_band.size
            decimation = sum(config.sample_rate / 2**s * taps / 2 for s in range(plan.n_stages))
            kernels = sum(level.kernel.size for level in plan.levels)
            out[kind] = decimation + frames_per_s * kernels
    return out


def _rss_mb() -> float:
    """Current resident memory of this process, in MB (Linux /proc; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def run_bench(
    bundle: Bundle,
    audio: np.ndarray,
    kinds: Sequence[str] | None = None,
    seconds: float | None = None,
    threads: int | None = None,
    block: int = 1024,
    window_s: float = 3.0,
    fusion: str | None = None,
    progress: bool = False,
    backend: str = "auto",
) -> dict[str, Any]:
    """Push ``audio`` (looped to ``seconds`` if given) through the runtime and measure it.

    Parameters
    ----------
    bundle : Bundle
        The model bundle.
    audio : numpy.ndarray
        Mono samples at the bundle's sample rate.
    kinds : sequence of str, optional
        Spectrograms (default: all of the bundle's).
    seconds : float, optional
        Audio to process; the signal is repeated to reach it (a long replay shows whether
        memory stays flat).
    threads : int, optional
        Interpreter threads.
    block : int
        Samples per push (a microphone callback's size).
    window_s, fusion
        Scene window and fusion rule, as in ``listen``.
    progress : bool
        Show a progress bar.
    backend : str
        ``auto``, ``tflite`` or ``onnx`` (see :func:`edge_asc.backends.open_model`).

    Returns
    -------
    dict
        The report (see the keys in the returned dict).
    """
    engine = StreamingClassifier(bundle, kinds, threads=threads, backend=backend)
    tracker = SceneTracker(bundle.labels, engine.kinds, window_s, fusion or bundle.default_fusion)
    rate = engine.sample_rate
    total = int((seconds if seconds else audio.size / rate) * rate)
    latencies: list[float] = []
    changes: list[tuple[float, str]] = []  # (patch end, steady label) where the label changed
    rss_after_warmup = None
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("bench", total=total)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    sent = 0
    try:
        while sent < total:
            start = sent % audio.size
            chunk = audio[start : start + min(block, total - sent)]
            started = time.perf_counter()
            results = engine.push(chunk)
            if results:
                for scene in tracker.add(results):
                    if not changes or changes[-1][1] != scene.label:
                        changes.append((round(scene.end_s, 3), scene.label))
                latencies.append(time.perf_counter() - started)
            sent += chunk.size
            if rss_after_warmup is None and sent >= min(total, 30 * rate):
                rss_after_warmup = _rss_mb()
            if bar is not None:
                bar.update(task, completed=sent)
    finally:
        if bar is not None:
            bar.stop()
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    audio_s = sent / rate
    rss_end = _rss_mb()
    config = next(iter(bundle.models.values())).features
    lookahead = max(timing(k, bundle.models[k].features).lookahead for k in engine.kinds)
    frames = int(bundle.manifest["patch"]["frames"])
    patches_per_s = config.sample_rate / (config.hop_length * frames)
    models = {
        kind: {
            "name": bundle.models[kind].info["model"].get("name"),
            "width": bundle.models[kind].info["model"].get("width"),
            "params": bundle.models[kind].info["model"].get("params"),
            "macs_per_patch": bundle.models[kind].info["model"].get("macs_per_patch"),
            "macs_per_second": (bundle.models[kind].info["model"].get("macs_per_patch") or 0)
            * patches_per_s,
            "bytes": bundle.models[kind].tflite_file.member.bytes,
        }
        for kind in engine.kinds
    }
    features = feature_macs_per_second(engine.kinds, config)
    return {
        "edge_asc": __version__,
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "bundle": str(bundle.path),
        "quantization": bundle.quantization,
        "spectrograms": list(engine.kinds),
        "sample_rate": rate,
        "threads": threads,
        "backend": engine.backend,
        "block_samples": block,
        "audio_seconds": round(audio_s, 3),
        "patches": engine.patches_done,
        "label_changes": changes,
        "feature_macs_per_second": {k: round(v) for k, v in features.items()},
        "feature_macs_per_second_total": round(sum(features.values())),
        "models": models,
        "model_macs_per_second_total": round(sum(m["macs_per_second"] for m in models.values())),
        "real_time_factor": {
            "features": engine.feature_seconds / audio_s,
            "inference": engine.inference_seconds / audio_s,
            "total": wall / audio_s,
        },
        "cpu_seconds_per_audio_second": cpu / audio_s,
        "latency": {
            "lookahead_ms": 1e3 * lookahead / rate,
            "compute_median_ms": 1e3 * float(np.median(latencies)) if latencies else None,
            "compute_max_ms": 1e3 * float(np.max(latencies)) if latencies else None,
            "patch_to_label_max_ms": 1e3 * (block / rate + (max(latencies) if latencies else 0)),
        },
        "memory": {
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
            "rss_after_30s_mb": rss_after_warmup,
            "rss_end_mb": rss_end,
            "growth_mb": None if rss_after_warmup is None else rss_end - rss_after_warmup,
        },
        "dropped_blocks": 0,
    }


def format_report(report: dict[str, Any]) -> str:
    """A readable summary of :func:`run_bench`'s report."""
    rtf = report["real_time_factor"]
    lat = report["latency"]
    mem = report["memory"]
    kinds = ", ".join(report["spectrograms"])
    lines = [
        f"{report['audio_seconds']:.1f} s of audio, spectrograms {kinds}"
        f", {report['quantization']} models on {report.get('backend', 'tflite')}"
        f", {report['threads'] or 'default'} thread(s)",
        f"spectrogram MACs/s: {report['feature_macs_per_second_total'] / 1e6:.1f} M   "
        f"model MACs/s: {report['model_macs_per_second_total'] / 1e6:.1f} M",
    ]
    for kind, m in report["models"].items():
        lines.append(
            f"  {kind:7s} {m['name']} x{m['width']}: {m['params'] or 0:,} params, "
            f"{(m['macs_per_patch'] or 0) / 1e6:.1f} M MACs/patch, {m['bytes'] / 1024:.0f} KiB"
        )
    lines += [
        f"real-time factor: {rtf['total']:.4f} (features {rtf['features']:.4f}, "
        f"inference {rtf['inference']:.4f}); CPU s per audio s: "
        f"{report['cpu_seconds_per_audio_second']:.4f}",
        f"latency: lookahead {lat['lookahead_ms']:.0f} ms; compute median "
        f"{lat['compute_median_ms'] or 0:.1f} ms, max {lat['compute_max_ms'] or 0:.1f} ms; "
        f"patch end to label <= {lat['patch_to_label_max_ms']:.0f} ms",
        f"memory: peak RSS {mem['peak_rss_mb']:.0f} MB, growth after warm-up "
        + (f"{mem['growth_mb']:+.1f} MB" if mem["growth_mb"] is not None else "n/a"),
    ]
    return "\n".join(lines)
