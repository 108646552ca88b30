"""The self-describing model bundle: one file holding everything the runtime needs.

A bundle (``*.easc``) is a zip archive with one TFLite model per spectrogram (and, from
schema version 2, optionally the same model as ONNX for GPU runtimes) and a
``manifest.json`` that says what each model expects: the exact :class:`FeatureConfig` and
:class:`NormStats` used in training, the class labels in output order, the quantization and
the default late-fusion rule. Export writes it with :func:`write_bundle`; the runtime and
``edge-asc info`` read it with :func:`load_bundle`.

Why one verified file: a model run with the wrong front-end, the wrong normalisation or the
wrong label order still produces confident-looking labels, so the device must never guess
any of these. Loading therefore checks everything (zip integrity, member names, hashes and
sizes of every model, the schema of the manifest) and refuses a bad bundle with one line that
names the file. Nothing here uses pickle, and nothing here imports TensorFlow: the loader
hands back model bytes and leaves the interpreter to the caller.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from edge_asc.errors import EdgeAscError
from edge_asc.features import KINDS, FeatureConfig, FeatureConfigError, NormStats
from edge_asc.files import atomic_output

SCHEMA_VERSION = 2
"""The manifest schema this edge-asc writes (version 2 added the optional ``onnx`` member)."""

READABLE_SCHEMAS: tuple[int, ...] = (1, 2)
"""Manifest schema versions this edge-asc loads."""

BUNDLE_SUFFIX = ".easc"
"""Conventional file suffix of a bundle."""

BUNDLE_FORMAT = "edge-asc-bundle"
"""Value of the manifest's ``format`` field."""

MANIFEST_NAME = "manifest.json"
"""Name of the manifest inside the zip archive."""

FUSIONS: tuple[str, ...] = ("mean", "prod", "max")
"""Late-fusion rules a bundle may name as its default."""

QUANTIZATIONS: tuple[str, ...] = ("float32", "float16", "dynamic", "int8")
"""Quantization modes a bundle's models may use (one mode for all members)."""

MAX_MEMBER_BYTES = 512 * 1024**2
"""Largest declared uncompressed size of one zip member (a crude zip-bomb guard)."""

MAX_TOTAL_BYTES = 2 * 1024**3
"""Largest declared uncompressed size of all zip members together."""

_TOP_KEYS = frozenset(
    {
        "format",
        "schema_version",
        "labels",
        "default_fusion",
        "quantization",
        "patch",
        "spectrograms",
        "evaluation",
        "provenance",
    }
)
_ENTRY_KEYS = frozenset(
    {"file", "sha256", "bytes", "features", "norm", "model", "accuracy", "onnx"}
)
_MEMBER_KEYS = frozenset({"file", "sha256", "bytes"})
_MODEL_KEYS = frozenset({"name", "width", "params", "macs_per_patch"})
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BundleError(EdgeAscError):
    """A bundle that cannot be written or loaded; ``str()`` is one line naming the file."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


@dataclass(frozen=True)
class BundleModel:
    """One spectrogram's model from a bundle, with everything needed to run it.

    Attributes
    ----------
    kind : str
        Spectrogram kind (one of :data:`edge_asc.features.KINDS`).
    model_bytes : bytes
        The TFLite flatbuffer, verified against the manifest's SHA-256 and size.
    features : FeatureConfig
        The front-end the model was trained on.
    norm : NormStats
        Per-bin normalisation applied to its spectrogram before the model.
    info : dict
        The manifest entry of this spectrogram (file, sha256, bytes, model, accuracy, ...).
    onnx_bytes : bytes or None
        The same network as an ONNX model (float32), verified likewise; ``None`` when the
        bundle has none.
    """

    kind: str
    model_bytes: bytes = field(repr=False)
    features: FeatureConfig
    norm: NormStats = field(repr=False)
    info: dict[str, Any] = field(repr=False)
    onnx_bytes: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle.

    Attributes
    ----------
    path : pathlib.Path
        The file it was loaded from.
    manifest : dict
        The whole parsed manifest (all spectrograms, whatever was selected).
    labels : tuple of str
        Class names in model output order.
    models : dict of str to BundleModel
        The selected spectrograms' models, in the order they were asked for (manifest order
        when all were).
    default_fusion : str
        One of :data:`FUSIONS`.
    quantization : str
        One of :data:`QUANTIZATIONS`.
    """

    path: Path
    manifest: dict[str, Any] = field(repr=False)
    labels: tuple[str, ...]
    models: dict[str, BundleModel]
    default_fusion: str
    quantization: str

    def select(self, kinds: Sequence[str] | None) -> dict[str, BundleModel]:
        """The models of ``kinds`` (all of them for ``None``), in the order given.

        Raises
        ------
        BundleError
            If a kind is not among :attr:`models`, or ``kinds`` is empty.
        """
        return _select(self.path, self.models, kinds)


# ---------------------------------------------------------------------------------------------
# Writing


def write_bundle(
    path: str | os.PathLike[str], manifest: Mapping[str, Any], members: Mapping[str, bytes]
) -> None:
    """Validate a manifest and write it with its models as one bundle file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle to create or replace (conventionally ending in :data:`BUNDLE_SUFFIX`).
        Its directory must exist.
    manifest : Mapping
        The manifest (schema above). ``sha256`` and ``bytes`` of every spectrogram's
        model (and of its ``onnx`` member, if the entry has one) are filled in from
        ``members`` (the caller's mapping is not modified); a missing ``file`` defaults to
        ``<kind>.tflite``. NumPy scalars and arrays are converted to
        plain JSON numbers and lists.
    members : Mapping of str to bytes
        The model files, keyed by the ``file`` names the manifest lists; exactly those.

    Raises
    ------
    BundleError
        If the manifest fails any check :func:`load_bundle` makes, ``members`` does not
        match the listed files, or the file cannot be written. Nothing is left behind.
    """
    target = Path(path)
    where = f"cannot write bundle '{target}'"
    try:
        text = json.dumps(manifest, default=_json_default, allow_nan=False)
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: the manifest is not plain JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{where}: the manifest must be a JSON object")

    spectrograms = data.get("spectrograms")
    listed: list[str] = []
    if isinstance(spectrograms, dict):
        for kind, entry in spectrograms.items():
            if not isinstance(entry, dict):
                continue  # reported by _parse_manifest below
            entry.setdefault("file", f"{kind}.tflite")
            records = [entry, entry["onnx"]] if isinstance(entry.get("onnx"), dict) else [entry]
            for record in records:
                name = record.get("file")
                if not isinstance(name, str):
                    continue
                listed.append(name)
                if name in members:
                    blob = bytes(members[name])
                    record["sha256"] = hashlib.sha256(blob).hexdigest()
                    record["bytes"] = len(blob)
    missing = [name for name in listed if name not in members]
    if missing:
        raise BundleError(f"{where}: no bytes given for listed file(s) {_names(missing)}")
    parsed = _parse_manifest(data, where)
    listed = [record["file"] for entry in parsed.entries.values() for record in _records(entry)]
    extra = sorted(set(members) - set(listed))
    if extra:
        raise BundleError(f"{where}: member(s) {_names(extra)} are not listed in the manifest")

    manifest_bytes = (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8")
    try:
        with (
            atomic_output(target) as temp,
            zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            archive.writestr(_zip_info(MANIFEST_NAME), manifest_bytes)
            for name in listed:
                archive.writestr(_zip_info(name), bytes(members[name]))
    except OSError as exc:
        raise BundleError(f"{where}: {exc.strerror}" if exc.strerror else str(exc)) from exc


def _zip_info(name: str) -> zipfile.ZipInfo:
    """A member header with a fixed date and mode, so equal inputs give equal bundles."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _json_default(value: Any) -> Any:
    """Let NumPy scalars and arrays through ``json.dumps`` as plain numbers and lists."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# ---------------------------------------------------------------------------------------------
# Loading


def load_bundle(path: str | os.PathLike[str], kinds: Sequence[str] | None = None) -> Bundle:
    """Load and verify a bundle.

    Every member of the archive is checked and every listed model is read in full and
    compared with its SHA-256 and size, whatever ``kinds`` selects.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle file.
    kinds : sequence of str, optional
        Spectrograms to keep in :attr:`Bundle.models`, in this order; ``None`` keeps all,
        in manifest order.

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        With a one-line message naming the file, if the file is missing, not a complete
        zip, holds unsafe, unlisted, missing or tampered members, has an invalid or
        unsupported manifest, or lacks a requested kind.
    """
    bundle_path = Path(path)
    where = f"bundle '{bundle_path}'"
    if not bundle_path.exists():
        raise BundleError(f"{where} does not exist")
    if bundle_path.is_dir():
        raise BundleError(f"{where} is a directory, not a bundle file")

    try:
        with zipfile.ZipFile(bundle_path) as archive:
            manifest = _read_manifest(archive, where)
            parsed = _parse_manifest(manifest, where)
            listed = [
                record["file"] for entry in parsed.entries.values() for record in _records(entry)
            ]
            _check_membership(archive, listed, where)
            contents = {name: _read(archive, name, where) for name in listed}
    except BundleError:
        raise
    except zipfile.BadZipFile as exc:
        raise BundleError(
            f"{where} is not a valid bundle (not a zip file, or truncated: {exc})"
        ) from exc
    except (OSError, EOFError, zlib.error, ValueError, NotImplementedError, RuntimeError) as exc:
        raise BundleError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from exc

    models: dict[str, BundleModel] = {}
    for kind, entry in parsed.entries.items():
        for record in _records(entry):
            blob = contents[record["file"]]
            if len(blob) != record["bytes"]:
                raise BundleError(
                    f"{where} has been tampered with: {record['file']!r} is {len(blob)} bytes, "
                    f"the manifest says {record['bytes']}"
                )
            if hashlib.sha256(blob).hexdigest() != record["sha256"]:
                raise BundleError(
                    f"{where} has been tampered with: the SHA-256 of {record['file']!r} does "
                    "not match the manifest"
                )
        models[kind] = BundleModel(
            kind=kind,
            model_bytes=contents[entry["file"]],
            features=parsed.features[kind],
            norm=parsed.norms[kind],
            info=entry,
            onnx_bytes=contents[entry["onnx"]["file"]] if "onnx" in entry else None,
        )

    return Bundle(
        path=bundle_path,
        manifest=manifest,
        labels=parsed.labels,
        models=_select(bundle_path, models, kinds),
        default_fusion=parsed.default_fusion,
        quantization=parsed.quantization,
    )


def _records(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The member records (file, sha256, bytes) of a checked spectrogram entry."""
    return [entry, entry["onnx"]] if "onnx" in entry else [entry]


def _read_manifest(archive: zipfile.ZipFile, where: str) -> Any:
    """Check every entry of ``archive`` (names, duplicates, sizes), then parse the manifest."""
    seen: set[str] = set()
    total = 0
    for info in archive.infolist():
        name = info.filename
        if _unsafe_name(name):
            raise BundleError(
                f"{where} is unsafe: member {name!r} escapes the bundle (absolute path, '..', "
                "backslash or drive letter)"
            )
        if name in seen:
            raise BundleError(f"{where} has been tampered with: member {name!r} appears twice")
        seen.add(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise BundleError(
                f"{where} is refused: member {name!r} declares {info.file_size} bytes "
                f"uncompressed (limit {MAX_MEMBER_BYTES})"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise BundleError(
            f"{where} is refused: its members declare {total} bytes uncompressed "
            f"(limit {MAX_TOTAL_BYTES})"
        )
    if MANIFEST_NAME not in seen:
        raise BundleError(f"{where} has no {MANIFEST_NAME} (not an edge-asc bundle?)")
    return _decode_manifest(_read(archive, MANIFEST_NAME, where), where)


def _check_membership(archive: zipfile.ZipFile, listed: Sequence[str], where: str) -> None:
    """The archive must hold exactly the manifest and the files it lists."""
    names = set(archive.namelist())
    missing = [name for name in listed if name not in names]
    if missing:
        raise BundleError(
            f"{where} is incomplete: listed file(s) {_names(missing)} are not in the archive"
        )
    extra = sorted(names - set(listed) - {MANIFEST_NAME})
    if extra:
        raise BundleError(f"{where} has been tampered with: unlisted member(s) {_names(extra)}")


def _read(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    """Read one member in full, so its CRC is checked; errors become :class:`BundleError`."""
    try:
        return archive.read(name)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise BundleError(
            f"{where} is corrupt: member {name!r} cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def _unsafe_name(name: str) -> bool:
    """Whether a member name could point outside the bundle or is not a plain relative path."""
    if not name or name.startswith("/") or "\\" in name or _DRIVE.match(name):
        return True
    if _CONTROL.search(name):
        return True
    parts = name.rstrip("/").split("/")
    return any(part in ("", ".", "..") for part in parts)


def _decode_manifest(raw: bytes, where: str) -> Any:
    """Parse manifest bytes as strict JSON: UTF-8, no NaN/Infinity, no duplicate keys."""
    try:
        return json.loads(
            raw.decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: {MANIFEST_NAME} is not UTF-8 text ({exc.reason})") from exc
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{where}: {MANIFEST_NAME} is not valid JSON ({exc})") from exc


def _reject_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _select(
    path: Path, models: Mapping[str, BundleModel], kinds: Sequence[str] | None
) -> dict[str, BundleModel]:
    """The models of ``kinds`` in the order given (all, in stored order, for ``None``)."""
    if kinds is None:
        return dict(models)
    if isinstance(kinds, str):
        kinds = [kinds]
    if not kinds:
        raise BundleError(f"no spectrogram requested from bundle '{path}'")
    selected: dict[str, BundleModel] = {}
    for kind in kinds:
        if kind not in models:
            raise BundleError(
                f"bundle '{path}' has no {kind!r} spectrogram (it has: {', '.join(models)})"
            )
        selected[kind] = models[kind]
    return selected


# ---------------------------------------------------------------------------------------------
# The manifest schema


@dataclass(frozen=True)
class _Parsed:
    labels: tuple[str, ...]
    default_fusion: str
    quantization: str
    entries: dict[str, dict[str, Any]]
    features: dict[str, FeatureConfig]
    norms: dict[str, NormStats]


def _parse_manifest(manifest: Any, where: str) -> _Parsed:
    """Check a parsed manifest against the schema (shared by writing and loading)."""

    def bad(message: str) -> NoReturn:
        raise BundleError(f"{where}: invalid manifest: {message}")

    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: {MANIFEST_NAME} is not a JSON object")
    fmt = manifest.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(
            f"{where} is not an edge-asc bundle (format is {_short(fmt)}, "
            f"expected {BUNDLE_FORMAT!r})"
        )
    version = manifest.get("schema_version")
    if version not in READABLE_SCHEMAS or not _is_int(version):
        if _is_int(version) and version > SCHEMA_VERSION:
            hint = "upgrade edge-asc to load it"
        else:
            hint = "re-export it with this edge-asc"
        raise BundleError(
            f"{where} has manifest schema version {_short(version)}, but this edge-asc reads "
            f"version {' or '.join(map(str, READABLE_SCHEMAS))} ({hint})"
        )
    unknown = sorted(set(manifest) - _TOP_KEYS)
    if unknown:
        bad(f"unknown field(s) {_names(unknown)}")

    labels = manifest.get("labels")
    if not isinstance(labels, list) or not labels:
        bad("'labels' must be a non-empty list of class names")
    for label in labels:
        if not isinstance(label, str) or not label.strip() or _CONTROL.search(label):
            bad(f"label {_short(label)} is not a usable class name")
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        bad(f"duplicated label(s) {_names(duplicated)}")

    fusion = manifest.get("default_fusion")
    if fusion not in FUSIONS:
        bad(f"unknown default_fusion {_short(fusion)} (expected one of {', '.join(FUSIONS)})")
    quantization = manifest.get("quantization")
    if quantization not in QUANTIZATIONS:
        bad(
            f"unknown quantization {_short(quantization)} "
            f"(expected one of {', '.join(QUANTIZATIONS)})"
        )

    patch = manifest.get("patch")
    if not isinstance(patch, dict) or set(patch) != {"bins", "frames"}:
        bad("'patch' must be an object with exactly 'bins' and 'frames'")
    for key in ("bins", "frames"):
        if not _is_int(patch[key]) or patch[key] < 1:
            bad(f"patch {key} must be a positive integer, got {_short(patch[key])}")
    bins = patch["bins"]

    for key in ("evaluation", "provenance"):
        if key in manifest and not isinstance(manifest[key], dict):
            bad(f"{key!r} must be an object")

    spectrograms = manifest.get("spectrograms")
    if not isinstance(spectrograms, dict) or not spectrograms:
        bad("'spectrograms' must be a non-empty object")
    entries: dict[str, dict[str, Any]] = {}
    features: dict[str, FeatureConfig] = {}
    norms: dict[str, NormStats] = {}
    files: set[str] = set()
    for kind, entry in spectrograms.items():
        if kind not in KINDS:
            bad(f"unknown spectrogram kind {kind!r} (expected one of {', '.join(KINDS)})")
        if not isinstance(entry, dict):
            bad(f"spectrogram {kind!r} must be an object")
        entries[kind] = entry
        _check_entry(kind, entry, bad)
        if "onnx" in entry and version < 2:
            bad(f"{kind}: an 'onnx' member needs schema version 2")
        for record in _records(entry):
            if record["file"] in files:
                bad(f"file {record['file']!r} is listed more than once")
            files.add(record["file"])

        try:
            config = FeatureConfig.from_dict(entry["features"])
        except (FeatureConfigError, ValueError, TypeError) as exc:
            bad(f"{kind}: invalid feature config ({exc})")
        if config.n_bins != bins:
            bad(f"{kind}: features have {config.n_bins} bins, the patch has {bins}")
        features[kind] = config

        try:
            norm = NormStats.from_dict(entry["norm"])
        except (KeyError, ValueError, TypeError) as exc:
            bad(f"{kind}: invalid normalisation stats ({exc})")
        if norm.mean.shape[0] != bins:
            bad(f"{kind}: normalisation stats have {norm.mean.shape[0]} bins, the patch has {bins}")
        if not (np.all(np.isfinite(norm.mean)) and np.all(np.isfinite(norm.std))):
            bad(f"{kind}: normalisation stats are not all finite")
        norms[kind] = norm

    return _Parsed(
        labels=tuple(labels),
        default_fusion=fusion,
        quantization=quantization,
        entries=entries,
        features=features,
        norms=norms,
    )


def _check_entry(kind: str, entry: dict[str, Any], bad: Callable[[str], NoReturn]) -> None:
    """Check one spectrogram entry's own fields (not its features and norm)."""
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        bad(f"{kind}: unknown field(s) {_names(unknown)}")
    for key in ("file", "sha256", "bytes", "features", "norm", "model"):
        if key not in entry:
            bad(f"{kind}: missing {key!r}")
    _check_member(kind, entry, bad)
    if "onnx" in entry:
        onnx = entry["onnx"]
        if not isinstance(onnx, dict) or set(onnx) != _MEMBER_KEYS:
            bad(f"{kind}: 'onnx' must be an object with exactly 'file', 'sha256' and 'bytes'")
        _check_member(f"{kind} onnx", onnx, bad)
    for key in ("features", "norm"):
        if not isinstance(entry[key], dict):
            bad(f"{kind}: {key!r} must be an object")
    if "accuracy" in entry and not isinstance(entry["accuracy"], dict):
        bad(f"{kind}: 'accuracy' must be an object")

    model = entry["model"]
    if not isinstance(model, dict):
        bad(f"{kind}: 'model' must be an object")
    unknown = sorted(set(model) - _MODEL_KEYS)
    if unknown:
        bad(f"{kind}: unknown model field(s) {_names(unknown)}")
    if not isinstance(model.get("name"), str) or not model["name"]:
        bad(f"{kind}: model name must be a non-empty string")
    if "width" in model and not (_is_number(model["width"]) and model["width"] > 0):
        bad(f"{kind}: model width must be a positive number")
    if "params" in model and not (_is_int(model["params"]) and model["params"] >= 0):
        bad(f"{kind}: model params must be a non-negative integer")
    macs = model.get("macs_per_patch", 0)
    if not (_is_number(macs) and macs >= 0):
        bad(f"{kind}: model macs_per_patch must be a non-negative number")


def _check_member(what: str, record: dict[str, Any], bad: Callable[[str], NoReturn]) -> None:
    """Check one member record's file name, SHA-256 and size fields."""
    name = record["file"]
    if (
        not isinstance(name, str)
        or not _PLAIN_NAME.fullmatch(name)
        or name in (MANIFEST_NAME, ".", "..")
    ):
        bad(f"{what}: file {_short(name)} is not a plain member name")
    if not isinstance(record["sha256"], str) or not _SHA256.fullmatch(record["sha256"]):
        bad(f"{what}: sha256 must be 64 lowercase hex digits")
    if not _is_int(record["bytes"]) or record["bytes"] < 0:
        bad(f"{what}: bytes must be a non-negative integer")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of an untrusted value, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(_short(name, 40) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


# ---------------------------------------------------------------------------------------------
# Human-readable summary


def format_info(bundle: Bundle) -> str:
    """Describe a bundle for ``edge-asc info``: labels, settings, models, cost, provenance.

    Parameters
    ----------
    bundle : Bundle
        A loaded bundle; every model in :attr:`Bundle.models` gets a row.

    Returns
    -------
    str
        Plain text, several lines, no trailing newline.
    """
    manifest = bundle.manifest
    patch = manifest["patch"]
    lines = [f"bundle: {bundle.path}"]
    try:
        lines[0] += f" ({_kib(bundle.path.stat().st_size)})"
    except OSError:
        pass
    lines += [
        f"format: {manifest['format']} schema {manifest['schema_version']}",
        f"labels ({len(bundle.labels)}): {', '.join(bundle.labels)}",
        f"quantization: {bundle.quantization}",
        f"default fusion: {bundle.default_fusion}",
        f"patch: {patch['bins']} bins x {patch['frames']} frames",
        "",
        "spectrograms:",
    ]

    header = [
        "kind",
        "file",
        "size",
        "onnx",
        "model",
        "width",
        "params",
        "MACs/patch",
        "MACs/s audio",
        "rate",
        "accuracy",
    ]
    rows = []
    for kind, model in bundle.models.items():
        info = model.info
        spec = info.get("model", {})
        features = model.features
        patches_per_second = features.sample_rate / (features.hop_length * patch["frames"])
        macs = spec.get("macs_per_patch")
        rows.append(
            [
                kind,
                str(info["file"]),
                _kib(info["bytes"]),
                _kib(info["onnx"]["bytes"]) if "onnx" in info else "-",
                str(spec.get("name", "-")),
                _number(spec["width"]) if "width" in spec else "-",
                f"{spec['params']:,}" if "params" in spec else "-",
                _si(macs) if macs is not None else "-",
                _si(macs * patches_per_second) if macs is not None else "-",
                f"{features.sample_rate} Hz",
                _flat(info.get("accuracy") or {}) or "-",
            ]
        )
    lines += ["  " + row for row in _table(header, rows)]

    provenance = manifest.get("provenance")
    if provenance:
        lines += ["", "provenance:"]
        for key, value in provenance.items():
            shown = _flat(value) if isinstance(value, dict) else _value(value)
            lines.append(f"  {key}: {shown}")

    evaluation = manifest.get("evaluation")
    if evaluation:
        lines += ["", "evaluation:"]
        lines += ["  " + line for line in _render(evaluation)]
    return "\n".join(lines)


def _render(data: dict[str, Any]) -> list[str]:
    """Render free-form results: a dict of dicts as a table, anything else as key: value."""
    if data and all(isinstance(value, dict) for value in data.values()):
        inner = list(data.values())
        if all(not isinstance(v, dict) for row in inner for v in row.values()):
            columns: list[str] = []
            for row in inner:
                columns += [key for key in row if key not in columns]
            rows = [
                [str(name)] + [_value(row[c]) if c in row else "-" for c in columns]
                for name, row in data.items()
            ]
            return _table(["", *columns], rows)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += ["  " + line for line in _render(value)]
        else:
            lines.append(f"{key}: {_value(value)}")
    return lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _flat(data: dict[str, Any], prefix: str = "") -> str:
    """``a=1 b.c=2``: a nested dict of numbers on one line."""
    parts = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(_flat(value, f"{name}."))
        else:
            parts.append(f"{name}={_value(value)}")
    return " ".join(part for part in parts if part)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return _one_line(str(value))


def _number(value: float) -> str:
    return f"{value:.4g}"


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def _si(value: float) -> str:
    """``162.7 M``: a count with a decimal prefix."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.1f} {prefix}"
    return f"{value:.0f}"
