"""What every command shares: the app, one-line errors, and the runtime commands' options."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from edge_asc.errors import EdgeAscError, one_line
from edge_asc.features import FeatureConfig, parse_kinds
from edge_asc.fusion import FUSION_RULES

if TYPE_CHECKING:
    from edge_asc.bundle import Bundle
    from edge_asc.decision import OpenSetDecision

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
    typer.echo(f"edge-asc: error: {one_line(message)}", err=True)
    raise typer.Exit(EXIT_USAGE)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's user-facing exceptions (and OS errors) into :func:`fail`."""
    try:
        yield
    except EdgeAscError as exc:
        fail(str(exc))
    except OSError as exc:  # disk full, permission denied, missing output folder
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        fail(f"{where}{exc.strerror or exc}")


def feature_config(preset: str, sample_rate: int | None) -> FeatureConfig:
    """The front-end settings of a named preset, at ``sample_rate`` if given."""
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


def kinds_option(features: str | None) -> tuple[str, ...] | None:
    """Parse a ``--features`` value (``None`` keeps all of the bundle's)."""
    if features is None:
        return None
    try:
        return parse_kinds(features)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def max_threads() -> int:
    """Most interpreter threads accepted: the CPU count's order of magnitude (at least 64)."""
    import os

    return max(64, 8 * (os.cpu_count() or 1))


def check_numbers(
    threads: int | None = None,
    window: float | None = None,
    duration: float | None = None,
    duration_option: str = "--duration",
) -> None:
    """Refuse option values that would only fail later, and less clearly."""
    import math

    if threads is not None and not 1 <= threads <= max_threads():
        raise UserError(f"--threads must be from 1 to {max_threads()}, got {threads}")
    if window is not None and not (math.isfinite(window) and 0 < window <= 3600):
        raise UserError(f"--window must be a number of seconds from 0 to 3600, got {window}")
    if duration is not None and not (math.isfinite(duration) and duration >= 0):
        raise UserError(f"{duration_option} must be a finite number of seconds, got {duration}")


def check_fusion(fusion: str | None) -> None:
    """Refuse an unknown ``--fusion`` before anything is loaded."""
    if fusion is not None and fusion not in FUSION_RULES:
        raise UserError(f"unknown fusion rule {fusion!r}; choose {', '.join(FUSION_RULES)}")


def default_model() -> Path:
    """The bundle shipped inside the package (``--model`` may be omitted)."""
    from importlib.resources import files

    return Path(str(files("edge_asc") / "models" / "default.easc"))


def key_list(keys: str | None) -> list[str] | None:
    """``--trusted-keys`` as a list of files (``None`` when not given or empty)."""
    files = [k.strip() for k in (keys or "").split(",") if k.strip()]
    return files or None


def open_bundle(
    model: Path | None, kinds: tuple[str, ...] | None, trusted_keys: str | None = None
) -> Bundle:
    """Load ``model`` (or the shipped default) with the spectrograms asked for.

    With ``trusted_keys`` (a comma list of Ed25519 public keys), only a bundle signed by
    one of them is accepted.
    """
    from edge_asc.bundle import load_bundle

    path = model or default_model()
    if model is None and not path.is_file():
        raise UserError("no default model is installed with this edge-asc; pass --model FILE")
    return load_bundle(path, kinds, trusted_keys=key_list(trusted_keys))


# Options shared by the runtime commands (classify, listen, bench).
ModelOption = Annotated[Path | None, typer.Option(help="Model bundle (default: the one shipped).")]
FeaturesOption = Annotated[
    str | None, typer.Option(help="Spectrograms to use (default: all in the bundle).")
]
FusionOption = Annotated[
    str | None, typer.Option(help="mean, prod or max (default: the bundle's).")
]
ThreadsOption = Annotated[int | None, typer.Option(help="Interpreter threads.", min=1)]
TrustedKeysOption = Annotated[
    str | None,
    typer.Option(
        envvar="EDGE_ASC_TRUSTED_KEYS",
        help="Run only bundles signed by one of these Ed25519 public keys (comma list of PEM).",
    ),
]
BackendOption = Annotated[
    str,
    typer.Option(help="auto (ONNX Runtime on a GPU if there is one, else TFLite), tflite or onnx."),
]
QuietOption = Annotated[
    float | None,
    typer.Option(help="Below this RMS level (dBFS) the answer is 'quiet' (default -50).", max=0.0),
]
ThresholdOption = Annotated[
    str | None,
    typer.Option(
        help="Evidence a label needs, else 'unknown' (default: the bundle's fitted thresholds; "
        "on the score the bundle's thresholds apply to, see 'edge-asc info'): one number, or "
        "per label 'dog=0.7,rain=0.4'."
    ),
]
MaxNotHeardOption = Annotated[
    float,
    typer.Option(help="An event ends after its label was not heard this many seconds.", min=0.0),
]


def decision_options(
    bundle: Bundle,
    quiet_dbfs: float | None,
    threshold: str | None,
    default: float | None = None,
    per_label: dict[str, float] | None = None,
) -> OpenSetDecision:
    """The open-set decision: the bundle's fitted thresholds, then a config file, then options.

    Each layer overrides the one before: ``default`` and ``per_label`` come from a config
    file; a ``--threshold`` number replaces the default and every per-label threshold, and
    ``--threshold dog=0.7,rain=0.4`` replaces those labels' only. A bundle without fitted
    thresholds starts from :data:`~edge_asc.decision.DEFAULT_THRESHOLD`.
    """
    from edge_asc.decision import (
        DEFAULT_QUIET_DBFS,
        OpenSetDecision,
        parse_thresholds,
        stored_decision,
    )

    stored = stored_decision(bundle)
    value, labels = stored.threshold, dict(stored.per_label)
    if default is not None:
        value, labels = default, {}
    labels.update(per_label or {})
    if threshold is not None:
        try:
            value, labels = float(threshold), {}
        except ValueError:
            labels.update(parse_thresholds(threshold))
    return OpenSetDecision(
        bundle.labels,
        quiet_dbfs=DEFAULT_QUIET_DBFS if quiet_dbfs is None else quiet_dbfs,
        threshold=value,
        per_label=labels,
        evidence=stored.evidence,
    )
