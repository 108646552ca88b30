"""Would an int8 ONNX copy pay? A bundle's ONNX models quantized statically, timed per patch.

Run by hand (needs the ``train`` extra for ``onnx``, and ``../shared/data``)::

    python benchmarks/bench_onnx_int8.py [--bundle B.easc] [--clips 60] [--rounds 5]

Bundles carry each model as TFLite (their export mode) and as float32 ONNX. This script takes
every ONNX model of a bundle, quantizes it with ONNX Runtime's static QDQ quantization (int8
weights per channel, uint8 activations, calibrated on real ESC-10 patches through the
bundle's own spectrograms and normalisation), and prints per model, one thread, medians of
alternating rounds: the float32 ONNX, the int8 ONNX and the bundle's TFLite model per patch,
and how often the int8 ONNX names the float model's class on other clips than those it was
calibrated on. Nothing is written to the bundle.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def patches_for(member, data: Path, clips: int) -> np.ndarray:
    """Normalised, non-overlapping patches ``(n, bins, frames)`` of ESC-10 clips."""
    from edge_asc.audio import load_audio
    from edge_asc.features import compute

    with open(data / "esc10" / "manifest.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["filename"])
    step = max(1, len(rows) // clips)
    out = []
    for row in rows[::step][:clips]:
        signal = load_audio(data / "esc10" / row["filename"], member.features.sample_rate)
        spectrogram = compute(signal, member.kind, member.features)
        for start in range(0, spectrogram.shape[1] - member.frames + 1, member.frames):
            out.append(member.norm.apply(spectrogram[:, start : start + member.frames]))
    return np.stack(out).astype(np.float32)


def quantize(onnx_bytes: bytes, name: str, calibration: np.ndarray, tmp: Path) -> bytes:
    """Static QDQ int8 copy of a float ONNX model."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{name: p[None, ..., None]} for p in calibration])

        def get_next(self):
            return next(self._feeds, None)

    source, prepared, quantized = tmp / "float.onnx", tmp / "pre.onnx", tmp / "int8.onnx"
    source.write_bytes(onnx_bytes)
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(quantized),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv", "Gemm", "MatMul"],
    )
    return quantized.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "edge_asc/models/default.easc")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="patches per model per round")
    args = parser.parse_args()

    from edge_asc.backends.onnx import OnnxModel
    from edge_asc.backends.tflite import TFLiteModel
    from edge_asc.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    print(f"{args.bundle.name}: {bundle.quantization} TFLite and float32 ONNX, one thread")
    print("model    float32 ONNX ms  int8 ONNX ms  TFLite ms  int8/float  agrees  max |dp|")
    for kind, member in bundle.models.items():
        patches = patches_for(member, args.data, args.clips)
        calibration, held_out = patches[0::2], patches[1::2]
        float_model = OnnxModel(member.onnx_bytes, threads=1)
        with tempfile.TemporaryDirectory() as tmp:
            int8_bytes = quantize(
                member.onnx_bytes, float_model._input_name, calibration, Path(tmp)
            )
        models = {
            "float": float_model,
            "int8": OnnxModel(int8_bytes, threads=1),
            "tflite": TFLiteModel(member.model_bytes, threads=1),
        }
        reference, quantized = models["float"].predict(held_out), models["int8"].predict(held_out)
        agree = float(np.mean(reference.argmax(1) == quantized.argmax(1)))
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                model.predict(held_out[:1])
                start = time.perf_counter()
                for patch in held_out[: args.runs]:
                    model.predict(patch[None])
                times[name].append((time.perf_counter() - start) / args.runs * 1e3)
        ms = {name: float(np.median(t)) for name, t in times.items()}
        print(
            f"{kind:8s} {ms['float']:15.2f} {ms['int8']:13.2f} {ms['tflite']:10.2f} "
            f"{ms['float'] / ms['int8']:10.2f}x {100 * agree:6.1f}% "
            f"{float(np.max(np.abs(reference - quantized))):9.4f}"
        )


if __name__ == "__main__":
    main()
