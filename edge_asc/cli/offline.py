"""Offline commands: spectrograms of a file, training, evaluation, export, bundle info.

Heavy imports (TensorFlow, matplotlib) happen inside the commands that need them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edge_asc.cli.common import (
    TrustedKeysOption,
    UserError,
    app,
    fail,
    feature_config,
    key_list,
    kinds_option,
    user_errors,
)
from edge_asc.features import KINDS, parse_kinds
from edge_asc.train.training import TrainConfig

_TRAIN = TrainConfig()  # the training defaults, typed once (the paper's settings)


@app.command()
def features(
    audio: Annotated[Path, typer.Argument(help="Audio file (WAV, FLAC, OGG, ...).")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind", "-k", help=f"Spectrogram(s): {', '.join(KINDS)}, a comma list, or 'all'."
        ),
    ] = "logmel",
    stream_block: Annotated[
        int | None,
        typer.Option(help="Compute through the streaming form in blocks of N samples.", min=1),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the (128, T) float32 array: .npy (one kind) or .npz (any)."),
    ] = None,
    png: Annotated[Path | None, typer.Option(help="Draw the spectrogram(s) to this PNG.")] = None,
    preset: Annotated[str, typer.Option(help="Feature settings: 'default' or 'paper'.")] = (
        "default"
    ),
    sample_rate: Annotated[
        int | None, typer.Option(help="Analysis sample rate in Hz (default 44100).")
    ] = None,
) -> None:
    """Compute spectrograms of an audio file (downmixed and resampled to the analysis rate)."""
    with user_errors():
        try:
            kinds = parse_kinds(kind)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        config = feature_config(preset, sample_rate)
        if out is not None and out.suffix not in (".npy", ".npz"):
            raise UserError(f"--out must end in .npy or .npz, got {out.name!r}")
        if out is not None and out.suffix == ".npy" and len(kinds) > 1:
            raise UserError("several spectrograms need an .npz --out (one array per kind)")
        from edge_asc.spectrogram_files import write_spectrograms

        result = write_spectrograms(
            audio, kinds, config, out, block=stream_block, keep=png is not None
        )
        for summary in result.summaries:
            typer.echo(summary.describe())
        if out is not None:
            typer.echo(f"wrote {out}")
        if png is not None and result.arrays is not None:
            from edge_asc.plotting import plot_spectrograms

            plot_spectrograms(png, result.arrays, config, title=audio.name)
            typer.echo(f"wrote {png}")


def _training_side():
    """Import the training side, or explain in one line how to install it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter quiet
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        fail("training needs TensorFlow: pip install 'edge-asc[train]'")
    from edge_asc.train import run

    return run


DATASET_NAMES = (
    "dcase2016, dcase2017, dcase2018-1a, dcase2018-1b, tau2020, litis, esc50, folder, csv"
)


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help=f"Dataset layout: {DATASET_NAMES}.")],
    root: Annotated[Path, typer.Option(help="Dataset folder (for csv: the manifest).")],
    out: Annotated[Path, typer.Option(help="Run directory to create (or resume).")],
    features: Annotated[
        str, typer.Option(help="Spectrograms, one model each: comma list or 'all'.")
    ] = "logmel,cqt",
    model: Annotated[str, typer.Option(help="cdnn, crnn or joint (the paper's).")] = _TRAIN.model,
    width: Annotated[
        float, typer.Option(help="Width multiplier (1.0 = the paper).")
    ] = _TRAIN.width,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = _TRAIN.epochs,
    fold: Annotated[
        int, typer.Option(help="Official fold to validate on; 0 trains on every clip.")
    ] = 1,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = _TRAIN.batch_size,
    learning_rate: Annotated[
        float, typer.Option(help="Adam learning rate.")
    ] = _TRAIN.learning_rate,
    lr_schedule: Annotated[
        str, typer.Option(help="constant (the paper's) or cosine (decayed to 0 over the run).")
    ] = _TRAIN.lr_schedule,
    l2: Annotated[float, typer.Option(help="L2 regularisation of the kernels.")] = _TRAIN.l2,
    mixup_alpha: Annotated[
        float, typer.Option(help="Beta(a, a) for mixup; 0 = off.")
    ] = _TRAIN.mixup_alpha,
    oversample: Annotated[
        bool, typer.Option(help="Randomly oversample the smaller classes.")
    ] = _TRAIN.oversample,
    seed: Annotated[int, typer.Option(help="Random seed.")] = _TRAIN.seed,
    patch_hop: Annotated[
        int,
        typer.Option(help="Frames between training patches (< 128: overlapping, a time shift)."),
    ] = _TRAIN.patch_hop,
    augment: Annotated[
        bool,
        typer.Option(
            help="Random gain, SpecAugment masks, and mixing with the 'unknown' class if any."
        ),
    ] = _TRAIN.augment,
    sample_rate: Annotated[
        int | None, typer.Option(help="Analysis sample rate in Hz (default 44100).")
    ] = None,
    preset: Annotated[str, typer.Option(help="Feature settings: default or paper.")] = "default",
    mixed_precision: Annotated[
        str, typer.Option(help="auto (on with a GPU), on or off.")
    ] = _TRAIN.mixed_precision,
    strategy: Annotated[
        str, typer.Option(help="tf.distribute: auto, default, mirrored or multiworker.")
    ] = _TRAIN.strategy,
    cache: Annotated[
        Path | None, typer.Option(help="Spectrogram cache folder (default ~/.cache/edge-asc).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes for feature extraction.", min=1)
    ] = None,
    esc10: Annotated[bool, typer.Option(help="esc50 only: keep the ESC-10 subset.")] = False,
) -> None:
    """Train the paper's models, one per spectrogram, then evaluate and fuse them."""
    run = _training_side()
    from edge_asc.train.models import MODELS

    with user_errors():
        kinds = kinds_option(features)
        if model not in MODELS:
            raise UserError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        config = _train_config(
            model=model,
            width=width,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            lr_schedule=lr_schedule,
            l2=l2,
            mixup_alpha=mixup_alpha,
            oversample=oversample,
            seed=seed,
            patch_hop=patch_hop,
            augment=augment,
            mixed_precision=mixed_precision,
            strategy=strategy,
        )
        options = {"esc10": True} if esc10 else {}
        run.train_run(
            out,
            dataset,
            root,
            kinds,
            config,
            features=feature_config(preset, sample_rate),
            fold=None if fold == 0 else fold,
            cache_dir=cache,
            workers=workers,
            dataset_options=options,
        )
        typer.echo(_finished(out, strategy))


def _finished(out: Path, strategy: str) -> str:
    """What a training process says at the end: only the chief wrote the run directory."""
    import json

    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    if strategy in ("multiworker", "auto") and task.get("index", 0) != 0:
        return f"worker {task['index']} finished (the chief writes {out})"
    return f"run written to {out}"


def _train_config(**settings: object) -> TrainConfig:
    """A :class:`TrainConfig`, its range checks as one-line errors."""
    try:
        return TrainConfig(**settings)  # type: ignore[arg-type]
    except ValueError as exc:
        raise UserError(str(exc)) from None


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `edge-asc train`.")],
    fusion: Annotated[str, typer.Option(help="Fusion rules: comma list of mean, prod, max.")] = (
        "mean,prod,max"
    ),
    cache: Annotated[Path | None, typer.Option(help="Spectrogram cache folder.")] = None,
) -> None:
    """Evaluate a run on its validation clips: per spectrogram and fused, as the paper."""
    run = _training_side()

    with user_errors():
        rules = [r.strip() for r in fusion.split(",") if r.strip()]
        run.evaluate_run(run_dir, rules=rules, cache_dir=cache)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `edge-asc train`.")],
    out: Annotated[
        Path | None, typer.Option(help="Bundle to write (default RUN_DIR/model-MODE.easc).")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Spectrograms to include (default: all of the run's).")
    ] = None,
    quantize: Annotated[
        str, typer.Option(help="float32, float16, dynamic or int8 (full integer).")
    ] = "int8",
    fusion: Annotated[str, typer.Option(help="Default fusion rule: mean, prod or max.")] = "prod",
    measure: Annotated[
        str, typer.Option(help="Modes to convert and measure for the table (comma list).")
    ] = "float32,float16,dynamic,int8",
    cache: Annotated[Path | None, typer.Option(help="Spectrogram cache folder.")] = None,
    onnx: Annotated[
        bool, typer.Option(help="Also store ONNX models (for a GPU: TensorRT / CUDA).")
    ] = True,
    sign: Annotated[
        Path | None, typer.Option(help="Sign the bundle with this Ed25519 private key (PEM).")
    ] = None,
    open_set: Annotated[
        Path | None,
        typer.Option(help="Fitted 'unknown' thresholds (JSON from bench_open_set.py) to store."),
    ] = None,
) -> None:
    """Convert a run's models into one quantized TFLite bundle and measure quantization."""
    _training_side()
    from edge_asc.export.exporter import default_bundle_path, export_run

    with user_errors():
        modes = [m.strip() for m in measure.split(",") if m.strip()]
        export_run(
            run_dir,
            out or default_bundle_path(run_dir, quantize),
            kinds=features,
            quantize=quantize,
            fusion=fusion,
            measure=modes,
            cache_dir=cache,
            onnx=onnx,
            sign=sign,
            open_set=open_set,
        )


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="A model bundle (.easc).")],
    trusted_keys: TrustedKeysOption = None,
) -> None:
    """Describe a model bundle: labels, spectrograms, sizes, cost, accuracy and signer."""
    from edge_asc.bundle import format_info, load_bundle

    with user_errors():
        typer.echo(format_info(load_bundle(model, trusted_keys=key_list(trusted_keys))))


@app.command()
def sign(
    model: Annotated[Path, typer.Argument(help="The bundle to sign (rewritten in place).")],
    key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM), e.g. from keygen.")],
) -> None:
    """Sign a model bundle, so devices that require signatures accept it."""
    from edge_asc.bundle import sign_bundle

    with user_errors():
        signature = sign_bundle(model, key)
    typer.echo(f"signed {model} with Ed25519 key {signature.fingerprint}")


@app.command()
def keygen(
    key: Annotated[Path, typer.Argument(help="Private key file to create (e.g. release.pem).")],
) -> None:
    """Create an Ed25519 key pair for signing bundles: KEY and its public KEY.pub.pem."""
    from edge_asc.bundle import generate_key_pair

    with user_errors():
        private, public, fingerprint = generate_key_pair(key)
    typer.echo(f"wrote {private} (keep it secret) and {public} (give it to devices)")
    typer.echo(f"fingerprint {fingerprint}")
