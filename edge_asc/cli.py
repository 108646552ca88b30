"""The ``edge-asc`` command line: one typer app, one thin command per task.

Commands parse arguments, call the library and turn the library's user-facing errors into one
line on stderr with exit code 2. Heavy imports (TensorFlow, matplotlib) happen inside the
commands that need them, so ``edge-asc --help`` and the device commands start fast.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import numpy as np
import typer

from edge_asc import __version__
from edge_asc.audio import AudioError, iter_audio_blocks, load_audio
from edge_asc.errors import EdgeAscError, one_line
from edge_asc.features import KINDS, FeatureConfig, FeatureStream, parse_kinds
from edge_asc.files import atomic_output

app = typer.Typer(
    name="edge-asc",
    help="Acoustic scene classification at the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_USAGE = 2
"""Exit code for bad input: missing or corrupt audio, bad options, unusable bundles."""


class UserError(EdgeAscError):
    """A problem with what the user asked for; printed as one line, never a traceback."""


def fail(message: str) -> NoReturn:
    """Print ``edge-asc: error: <message>`` on stderr and exit with code 2."""
    line = one_line(message)
    typer.echo(f"edge-asc: error: {line}", err=True)
    raise typer.Exit(EXIT_USAGE)


USER_ERRORS: tuple[type[BaseException], ...] = (EdgeAscError,)


@contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn the library's user-facing exceptions into :func:`fail`."""
    try:
        yield
    except (*USER_ERRORS, *extra) as exc:
        fail(str(exc))
    except OSError as exc:  # disk full, permission denied, missing output folder
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        fail(f"{where}{exc.strerror or exc}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edge-asc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Acoustic scene classification at the edge."""


def _feature_config(preset: str, sample_rate: int | None) -> FeatureConfig:
    presets: dict[str, Callable[[], FeatureConfig]] = {
        "default": FeatureConfig,
        "paper": FeatureConfig.paper,
    }
    if preset not in presets:
        raise UserError(f"unknown preset {preset!r}; choose from {', '.join(presets)}")
    config = presets[preset]()
    if sample_rate is not None:
        config = dataclasses.replace(config, sample_rate=sample_rate)
    return config


def _stream_features(
    audio: Path, kinds: tuple[str, ...], config: FeatureConfig, block: int
) -> dict[str, np.ndarray]:
    """Compute through :class:`FeatureStream` in blocks of exactly ``block`` samples."""
    stream = FeatureStream(kinds, config)
    parts: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    pending = np.zeros(0, dtype=np.float32)
    for chunk in iter_audio_blocks(audio, config.sample_rate):
        pending = np.concatenate([pending, chunk])
        n_full = pending.size // block * block
        for start in range(0, n_full, block):
            for kind, frames in stream.push(pending[start : start + block]).items():
                parts[kind].append(frames)
        pending = pending[n_full:]
    for kind, frames in stream.push(pending).items():
        parts[kind].append(frames)
    return {kind: np.concatenate(parts[kind], axis=1) for kind in kinds}


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
        config = _feature_config(preset, sample_rate)
        if out is not None and out.suffix not in (".npy", ".npz"):
            raise UserError(f"--out must end in .npy or .npz, got {out.name!r}")
        if out is not None and out.suffix == ".npy" and len(kinds) > 1:
            raise UserError("several spectrograms need an .npz --out (one array per kind)")
        if stream_block is None:
            signal = load_audio(audio, config.sample_rate)
            specs = FeatureStream(kinds, config).push(signal)
        else:
            specs = _stream_features(audio, kinds, config, stream_block)
        for name, spec in specs.items():
            seconds = spec.shape[1] * config.hop_length / config.sample_rate
            low, high = (float(spec.min()), float(spec.max())) if spec.size else (0.0, 0.0)
            typer.echo(
                f"{name:7s} {spec.shape[0]}x{spec.shape[1]} float32  "
                f"({seconds:.2f} s of frames, {low:.1f} .. {high:.1f})"
            )
        if out is not None:
            with atomic_output(out) as tmp:
                if out.suffix == ".npy":
                    np.save(tmp, specs[kinds[0]])
                else:
                    np.savez(tmp, **specs)
            typer.echo(f"wrote {out}")
        if png is not None:
            from edge_asc.plotting import plot_spectrograms

            plot_spectrograms(png, specs, config, title=audio.name)
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
    model: Annotated[str, typer.Option(help="cdnn, crnn or joint (the paper's).")] = "joint",
    width: Annotated[float, typer.Option(help="Width multiplier (1.0 = the paper).")] = 1.0,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 100,
    fold: Annotated[
        int, typer.Option(help="Official fold to validate on; 0 trains on every clip.")
    ] = 1,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 50,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    lr_schedule: Annotated[
        str, typer.Option(help="constant (the paper's) or cosine (decayed to 0 over the run).")
    ] = "constant",
    l2: Annotated[float, typer.Option(help="L2 regularisation of the kernels.")] = 1e-4,
    mixup_alpha: Annotated[float, typer.Option(help="Beta(a, a) for mixup; 0 = off.")] = 0.4,
    oversample: Annotated[
        bool, typer.Option(help="Randomly oversample the smaller classes.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    sample_rate: Annotated[
        int | None, typer.Option(help="Analysis sample rate in Hz (default 44100).")
    ] = None,
    preset: Annotated[str, typer.Option(help="Feature settings: default or paper.")] = "default",
    mixed_precision: Annotated[str, typer.Option(help="auto (on with a GPU), on or off.")] = "auto",
    strategy: Annotated[
        str, typer.Option(help="tf.distribute: auto, default, mirrored or multiworker.")
    ] = "auto",
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
    from edge_asc.train.cache import CacheError
    from edge_asc.train.datasets import DatasetError
    from edge_asc.train.training import TrainConfig

    with user_errors(run.RunError, DatasetError, CacheError, ValueError):
        kinds = parse_kinds(features)
        config = TrainConfig(
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
            mixed_precision=mixed_precision,
            strategy=strategy,
        )
        from edge_asc.train.models import MODELS

        if model not in MODELS:
            raise UserError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        options = {"esc10": True} if esc10 else {}
        run.train_run(
            out,
            dataset,
            root,
            kinds,
            config,
            features=_feature_config(preset, sample_rate),
            fold=None if fold == 0 else fold,
            cache_dir=cache,
            workers=workers,
            dataset_options=options,
        )
        typer.echo(f"run written to {out}")


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
    from edge_asc.train.cache import CacheError

    with user_errors(run.RunError, CacheError):
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
) -> None:
    """Convert a run's models into one quantized TFLite bundle and measure quantization."""
    _training_side()
    from edge_asc.bundle import BundleError
    from edge_asc.export.convert import ConversionError
    from edge_asc.export.exporter import ExportError, default_bundle_path, export_run
    from edge_asc.export.onnx_graph import OnnxExportError
    from edge_asc.train.cache import CacheError
    from edge_asc.train.run import RunError

    errors = (ExportError, ConversionError, OnnxExportError, BundleError, RunError, CacheError)
    with user_errors(*errors):
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
        )


# Shared by every command that loads a bundle.
TrustedKeysOption = Annotated[
    str | None,
    typer.Option(
        envvar="EDGE_ASC_TRUSTED_KEYS",
        help="Run only bundles signed by one of these Ed25519 public keys (comma list of PEM).",
    ),
]


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="A model bundle (.easc).")],
    trusted_keys: TrustedKeysOption = None,
) -> None:
    """Describe a model bundle: labels, spectrograms, sizes, cost, accuracy and signer."""
    from edge_asc.bundle import BundleError, format_info, load_bundle

    with user_errors(BundleError):
        typer.echo(format_info(load_bundle(model, trusted_keys=_key_list(trusted_keys))))


@app.command()
def sign(
    model: Annotated[Path, typer.Argument(help="The bundle to sign (rewritten in place).")],
    key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM), e.g. from keygen.")],
) -> None:
    """Sign a model bundle, so devices that require signatures accept it."""
    from edge_asc.bundle import BundleError, sign_bundle

    with user_errors(BundleError):
        signature = sign_bundle(model, key)
    typer.echo(f"signed {model} with Ed25519 key {signature.fingerprint}")


@app.command()
def keygen(
    key: Annotated[Path, typer.Argument(help="Private key file to create (e.g. release.pem).")],
) -> None:
    """Create an Ed25519 key pair for signing bundles: KEY and its public KEY.pub.pem."""
    from edge_asc.bundle import BundleError, generate_key_pair

    with user_errors(BundleError):
        private, public, fingerprint = generate_key_pair(key)
    typer.echo(f"wrote {private} (keep it secret) and {public} (give it to devices)")
    typer.echo(f"fingerprint {fingerprint}")


def _key_list(keys: str | None) -> list[str] | None:
    """``--trusted-keys`` as a list of files (``None`` when not given or empty)."""
    files = [k.strip() for k in (keys or "").split(",") if k.strip()]
    return files or None


# Options shared by the runtime commands (classify, listen, bench).
ModelOption = Annotated[Path | None, typer.Option(help="Model bundle (default: the one shipped).")]
FeaturesOption = Annotated[
    str | None, typer.Option(help="Spectrograms to use (default: all in the bundle).")
]
FusionOption = Annotated[
    str | None, typer.Option(help="mean, prod or max (default: the bundle's).")
]
ThreadsOption = Annotated[int | None, typer.Option(help="Interpreter threads.", min=1)]
BackendOption = Annotated[
    str,
    typer.Option(help="auto (ONNX Runtime on a GPU if there is one, else TFLite), tflite or onnx."),
]


def default_model() -> Path:
    """The bundle shipped inside the package (``--model`` may be omitted)."""
    from importlib.resources import files

    return Path(str(files("edge_asc") / "models" / "default.easc"))


def _open_bundle(
    model: Path | None, kinds: tuple[str, ...] | None, trusted_keys: str | None = None
):
    from edge_asc.bundle import load_bundle

    path = model or default_model()
    if model is None and not path.is_file():
        raise UserError("no default model is installed with this edge-asc; pass --model FILE")
    return load_bundle(path, kinds, trusted_keys=_key_list(trusted_keys))


def _kinds_option(features: str | None) -> tuple[str, ...] | None:
    if features is None:
        return None
    try:
        return parse_kinds(features)
    except ValueError as exc:
        raise UserError(str(exc)) from None


@app.command()
def classify(
    paths: Annotated[
        list[str], typer.Argument(help="Audio files, folders (searched recursively) or globs.")
    ],
    model: ModelOption = None,
    features: FeaturesOption = None,
    fusion: FusionOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json (one object per line) or csv.")
    ] = "table",
    timeline: Annotated[
        bool, typer.Option(help="Also give a label per window, with start and end times.")
    ] = False,
    window: Annotated[float, typer.Option(help="Timeline window in seconds.", min=0.1)] = 3.0,
    threads: ThreadsOption = None,
    backend: BackendOption = "auto",
    trusted_keys: TrustedKeysOption = None,
) -> None:
    """Label audio files with the scene they were recorded in."""
    import json

    from edge_asc.bundle import BundleError
    from edge_asc.classify import classify_file, expand_inputs
    from edge_asc.engine import EngineError, StreamingClassifier
    from edge_asc.inference import BackendError

    with user_errors(BundleError, EngineError, BackendError):
        if output_format not in ("table", "json", "csv"):
            raise UserError(f"unknown --format {output_format!r}; choose table, json or csv")
        if fusion is not None and fusion not in ("mean", "prod", "max"):
            raise UserError(f"unknown fusion rule {fusion!r}; choose mean, prod or max")
        bundle = _open_bundle(model, _kinds_option(features), trusted_keys)
        kinds = tuple(bundle.models)
        engine = StreamingClassifier(bundle, kinds, threads=threads, backend=backend)
    failed = 0
    header_done = False
    for argument, path in expand_inputs(paths):
        if path is None:
            typer.echo(f"edge-asc: skipped {argument}: no such audio file", err=True)
            failed += 1
            continue
        try:
            result = classify_file(path, bundle, kinds, fusion, window_s=window, engine=engine)
        except AudioError as exc:
            typer.echo(f"edge-asc: skipped {' '.join(str(exc).split())}", err=True)
            failed += 1
            continue
        if output_format == "json":
            typer.echo(json.dumps(result.to_dict(timeline=timeline)))
        elif output_format == "csv":
            if not header_done:
                columns = ["start_s", "end_s"] if timeline else list(bundle.labels)
                typer.echo(",".join(["path", "label", "score", *columns]))
                header_done = True
            if timeline:
                for w in result.timeline:
                    row = [result.path, w["label"], w["score"], w["start_s"], w["end_s"]]
                    typer.echo(",".join(_csv_cell(v) for v in row))
            else:
                row = [result.path, result.label, result.scores[result.label]]
                row += [result.scores[label] for label in bundle.labels]
                typer.echo(",".join(_csv_cell(v) for v in row))
        else:
            top = sorted(result.scores.items(), key=lambda kv: -kv[1])[:3]
            others = "  ".join(f"{name} {score:.2f}" for name, score in top[1:])
            typer.echo(
                f"{result.path}  {result.label} {result.scores[result.label]:.2f}  ({others})"
            )
            if timeline:
                for w in result.timeline:
                    span = f"{w['start_s']:8.2f} - {w['end_s']:8.2f} s"
                    typer.echo(f"    {span}  {w['label']} {w['score']:.2f}")
    if failed:
        raise typer.Exit(1)


def _csv_cell(value: object) -> str:
    text = str(value)
    if any(c in text for c in ',"\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


@app.command()
def listen(
    model: ModelOption = None,
    features: FeaturesOption = None,
    device: Annotated[
        str | None,
        typer.Option(help="Input device: index or (part of a) name; see `edge-asc devices`."),
    ] = None,
    window: Annotated[
        float, typer.Option(help="Seconds of patches the scene label averages.", min=0.1)
    ] = 3.0,
    fusion: FusionOption = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON line per update instead of the live view.")
    ] = False,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="Replay this audio file instead of the microphone."),
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="With --input: replay at real speed.")
    ] = False,
    threads: ThreadsOption = None,
    backend: BackendOption = "auto",
    trusted_keys: TrustedKeysOption = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds of audio.", min=0.0)
    ] = None,
) -> None:
    """Label the scene live from a microphone (or a file replayed the same way); Ctrl-C stops."""
    import json

    from edge_asc.bundle import BundleError
    from edge_asc.engine import EngineError
    from edge_asc.inference import BackendError
    from edge_asc.listen import (
        Listener,
        ListenError,
        microphone_source,
        render,
        replay_source,
        summary,
    )

    errors = (BundleError, EngineError, BackendError, ListenError)
    listener = source = None
    try:
        with user_errors(*errors):
            if fusion is not None and fusion not in ("mean", "prod", "max"):
                raise UserError(f"unknown fusion rule {fusion!r}; choose mean, prod or max")
            if input_file is not None and device is not None:
                raise UserError("--device and --input cannot be used together")
            if realtime and input_file is None:
                raise UserError("--realtime only applies to --input")
            bundle = _open_bundle(model, _kinds_option(features), trusted_keys)
            listener = Listener(
                bundle, window_s=window, fusion=fusion, threads=threads, backend=backend
            )
            if input_file is not None:
                source = replay_source(input_file, realtime=realtime)
                how = "at real speed" if realtime else "as fast as possible"
                start = f"replaying {source.name} ({source.sample_rate:g} Hz) {how}"
            else:
                source = microphone_source(device, listener.sample_rate)
                channels = "1 channel" if source.channels == 1 else f"{source.channels} channels"
                start = f"listening to {source.name} at {source.sample_rate:g} Hz, {channels}"
            rate = listener.sample_rate
            if source.sample_rate != rate:
                start += f", resampled to the model's {rate} Hz"
            start += f"; models on {listener.engine.backend}"
            with source:
                typer.echo(f"edge-asc: {start}; Ctrl-C stops", err=True)
                updates = listener.run(source, duration)
                if jsonl:
                    for update in updates:
                        typer.echo(json.dumps(update.to_dict()))
                        sys.stdout.flush()
                else:
                    from rich.live import Live

                    from edge_asc.classify import minimum_seconds

                    first = minimum_seconds(listener.engine)
                    view = render(None, source.name, first)
                    with Live(view, auto_refresh=False) as live:
                        for update in updates:
                            live.update(render(update, source.name), refresh=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how listening normally ends
    if listener is not None and source is not None:
        typer.echo(summary(listener, source), err=True)


@app.command()
def devices() -> None:
    """List the input devices (microphones) PortAudio sees; * marks the default."""
    from edge_asc.listen import ListenError, list_input_devices

    with user_errors(ListenError):
        found = list_input_devices()
    if not found:
        typer.echo("no input devices found")
        return
    rows = [["", "index", "name", "host API", "inputs", "default rate"]]
    for d in found:
        rate = f"{d.default_samplerate:g} Hz"
        mark = "*" if d.is_default else ""
        rows.append([mark, str(d.index), d.name, d.hostapi, str(d.channels), rate])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@app.command()
def bench(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help="Real audio to replay (default: the example clips)."),
    ] = None,
    model: ModelOption = None,
    features: FeaturesOption = None,
    seconds: Annotated[
        float | None, typer.Option(help="Audio to process (the input is looped).", min=1.0)
    ] = None,
    threads: ThreadsOption = None,
    backend: BackendOption = "auto",
    trusted_keys: TrustedKeysOption = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
) -> None:
    """Measure the whole pipeline here: MACs, real-time factor, latency, memory."""
    import json

    from edge_asc.bench import format_report, run_bench
    from edge_asc.bundle import BundleError
    from edge_asc.engine import EngineError
    from edge_asc.inference import BackendError

    with user_errors(BundleError, EngineError, BackendError):
        bundle = _open_bundle(model, _kinds_option(features), trusted_keys)
        rate = next(iter(bundle.models.values())).features.sample_rate
        if not inputs:
            examples = Path(__file__).resolve().parents[1] / "examples"
            inputs = sorted(examples.glob("*.flac"))
            if not inputs:
                raise UserError("no audio given and no example clips found; pass audio files")
        audio = np.concatenate([load_audio(p, rate) for p in inputs])
        report = run_bench(
            bundle, audio, seconds=seconds, threads=threads, progress=True, backend=backend
        )
        typer.echo(format_report(report))
        if json_out is not None:
            with atomic_output(json_out) as tmp:
                tmp.write_text(json.dumps(report, indent=2) + "\n")
            typer.echo(f"wrote {json_out}")


def main() -> None:
    """Entry point of the ``edge-asc`` console script."""
    # One BLAS thread: the front-end's small matrix products run several times faster than
    # with OpenBLAS spreading them over cores, and the interpreter has its own --threads.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
