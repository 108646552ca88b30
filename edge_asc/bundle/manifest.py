"""The bundle manifest as typed, frozen data, and the one place it is validated.

The manifest tells the device how to run each model (front-end, normalisation, labels,
patch size), so a wrong or hostile value must be refused before anything is sized from it:
every field is checked for type and range, and the fields that must agree (bins of the
features, the norm and the patch; the stored reference outputs and the labels) are
cross-checked. :meth:`Manifest.from_dict` is used both when writing and when loading, so
export cannot write a bundle that the device would refuse.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_asc.bundle.common import (
    CONTROL,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleError,
    SchemaViolation,
    bad,
    is_int,
    is_number,
    names,
    short,
)
from edge_asc.bundle.reference import Reference, check_agreement
from edge_asc.decision import EVIDENCE, UNKNOWN
from edge_asc.features import KINDS, FeatureConfig, FeatureConfigError, NormStats
from edge_asc.fusion import FUSION_RULES

SCHEMA_VERSION = 4
"""The manifest schema this edge-asc writes (version 2 added the optional ``onnx`` member,
version 3 the optional ``open_set`` thresholds, version 4 their ``evidence``)."""

READABLE_SCHEMAS: tuple[int, ...] = (1, 2, 3, 4)
"""Manifest schema versions this edge-asc loads."""

BUNDLE_FORMAT = "edge-asc-bundle"
"""Value of the manifest's ``format`` field."""

FUSIONS: tuple[str, ...] = FUSION_RULES
"""Late-fusion rules a bundle may name as its default."""

QUANTIZATIONS: tuple[str, ...] = ("float32", "float16", "dynamic", "int8")
"""Quantization modes a bundle's models may use (one mode for all members)."""

MAX_LABELS = 1000
"""Most class labels a bundle may have."""

MAX_PATCH_FRAMES = 4096
"""Most frames in one model input patch."""

MAX_PATCH_SECONDS = 60.0
"""Longest stretch of audio one patch may span (frames x hop / sample rate)."""

BACKEND_NAMES: tuple[str, ...] = ("tflite", "onnx")
"""Copies of a model a reference may hold outputs for."""

_TOP_KEYS = frozenset(
    {"format", "schema_version", "labels", "default_fusion", "quantization", "patch"}
    | {"spectrograms", "evaluation", "provenance", "open_set"}
)
_OPEN_SET_KEYS = frozenset({"threshold", "per_label", "method", "fitted", "evidence"})

_ENTRY_KEYS = frozenset(
    {"file", "sha256", "bytes", "features", "norm", "model", "accuracy", "onnx", "reference"}
)
_MEMBER_KEYS = frozenset({"file", "sha256", "bytes"})
_MODEL_KEYS = frozenset({"name", "width", "params", "macs_per_patch"})
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Member:
    """One file of the archive as the manifest lists it: name, SHA-256 and size."""

    file: str
    sha256: str
    bytes: int

    @classmethod
    def of(cls, file: str, blob: bytes) -> Member:
        """The record of ``blob`` stored as ``file``."""
        return cls(file=file, sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, data: Any, what: str) -> Member:
        """Check and rebuild a record (``what`` names it in messages)."""
        name = data["file"]
        if (
            not isinstance(name, str)
            or not _PLAIN_NAME.fullmatch(name)
            or name in (MANIFEST_NAME, SIGNATURE_NAME, ".", "..")
        ):
            bad(f"{what}: file {short(name)} is not a plain member name")
        if not isinstance(data["sha256"], str) or not _SHA256.fullmatch(data["sha256"]):
            bad(f"{what}: sha256 must be 64 lowercase hex digits")
        if not is_int(data["bytes"]) or data["bytes"] < 0:
            bad(f"{what}: bytes must be a non-negative integer")
        return cls(file=name, sha256=data["sha256"], bytes=data["bytes"])


@dataclass(frozen=True)
class ModelSpec:
    """What the network is: architecture name, width multiplier and cost (all but name optional)."""

    name: str
    width: float | None = None
    params: int | None = None
    macs_per_patch: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (absent fields left out)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any, kind: str) -> ModelSpec:
        """Check and rebuild the ``model`` object of spectrogram ``kind``."""
        if not isinstance(data, dict):
            bad(f"{kind}: 'model' must be an object")
        unknown = sorted(set(data) - _MODEL_KEYS)
        if unknown:
            bad(f"{kind}: unknown model field(s) {names(unknown)}")
        if not isinstance(data.get("name"), str) or not data["name"]:
            bad(f"{kind}: model name must be a non-empty string")
        if "width" in data and not (is_number(data["width"]) and data["width"] > 0):
            bad(f"{kind}: model width must be a positive number")
        if "params" in data and not (is_int(data["params"]) and data["params"] >= 0):
            bad(f"{kind}: model params must be a non-negative integer")
        if "macs_per_patch" in data and not (
            is_number(data["macs_per_patch"]) and data["macs_per_patch"] >= 0
        ):
            bad(f"{kind}: model macs_per_patch must be a non-negative number")
        return cls(**data)


@dataclass(frozen=True)
class Spectrogram:
    """One spectrogram's model: its files, front-end, normalisation and description."""

    kind: str
    tflite: Member
    features: FeatureConfig
    norm: NormStats = field(repr=False)
    model: ModelSpec
    onnx: Member | None = None
    accuracy: dict[str, Any] | None = None
    reference: Reference | None = None

    @property
    def members(self) -> list[Member]:
        """The archive files of this spectrogram (the TFLite model, then any ONNX copy)."""
        return [self.tflite] if self.onnx is None else [self.tflite, self.onnx]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the manifest's entry for :attr:`kind`)."""
        entry = {
            **self.tflite.to_dict(),
            "features": self.features.to_dict(),
            "norm": self.norm.to_dict(),
            "model": self.model.to_dict(),
        }
        for key in ("onnx", "accuracy", "reference"):
            value = getattr(self, key)
            if value is not None:
                entry[key] = value if isinstance(value, dict) else value.to_dict()
        return entry


@dataclass(frozen=True)
class Patch:
    """The model input: ``bins`` frequency bins by ``frames`` spectrogram frames."""

    bins: int
    frames: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"bins": self.bins, "frames": self.frames}


@dataclass(frozen=True)
class OpenSet:
    """Thresholds of the ``unknown`` answer, fitted on training data (``open_set``).

    Attributes
    ----------
    threshold : float
        Evidence the top label needs (0-1).
    per_label : dict of str to float
        Thresholds of single labels.
    method : str
        How they were fitted, in words.
    fitted : dict
        Free-form measurements of the fit (shown by ``edge-asc info``).
    evidence : str
        What the thresholds apply to (:data:`edge_asc.decision.EVIDENCE`); ``top`` (the
        label's fused score) when absent, as in bundles before schema version 4.
    """

    threshold: float
    per_label: dict[str, float] = field(default_factory=dict)
    method: str = ""
    fitted: dict[str, Any] = field(default_factory=dict)
    evidence: str = "top"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "threshold": self.threshold,
            "per_label": dict(self.per_label),
            "method": self.method,
            "fitted": dict(self.fitted),
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: Any, labels: Sequence[str]) -> OpenSet:
        """Check an ``open_set`` entry against the schema and the bundle's labels."""
        if not isinstance(data, dict):
            bad("'open_set' must be an object")
        unknown = sorted(set(data) - _OPEN_SET_KEYS)
        if unknown:
            bad(f"unknown open_set field(s) {names(unknown)}")
        per_label = data.get("per_label", {})
        if not isinstance(per_label, dict):
            bad("open_set 'per_label' must be an object")
        for name, value in {"threshold": data.get("threshold"), **per_label}.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                bad(f"open_set threshold of {short(name)} must be a number, got {short(value)}")
            if not 0.0 <= value <= 1.0:
                bad(f"open_set threshold of {short(name)} must be between 0 and 1, got {value}")
        strangers = sorted(set(per_label) - set(labels))
        if strangers:
            bad(f"open_set has thresholds for label(s) {names(strangers)} the bundle lacks")
        method, fitted = data.get("method", ""), data.get("fitted", {})
        if not isinstance(method, str) or not isinstance(fitted, dict):
            bad("open_set 'method' must be text and 'fitted' an object")
        evidence = data.get("evidence", "top")
        if evidence not in EVIDENCE:
            bad(f"open_set 'evidence' must be one of {', '.join(EVIDENCE)}, got {short(evidence)}")
        if evidence != "top" and UNKNOWN not in labels:
            bad(f"open_set 'evidence' {evidence!r} needs a class {UNKNOWN!r}")
        return cls(
            float(data["threshold"]),
            {k: float(v) for k, v in per_label.items()},
            method,
            fitted,
            evidence,
        )


@dataclass(frozen=True)
class Manifest:
    """Everything a bundle says about its models (``manifest.json``), validated.

    Attributes
    ----------
    labels : tuple of str
        Class names in model output order.
    default_fusion, quantization : str
        One of :data:`FUSIONS`; one of :data:`QUANTIZATIONS`.
    patch : Patch
        Input geometry shared by every model.
    spectrograms : dict of str to Spectrogram
        One entry per spectrogram, in stored order.
    evaluation, provenance : dict or None
        Free-form measurements and origin, shown by ``edge-asc info``.
    open_set : OpenSet or None
        Fitted thresholds of the ``unknown`` answer; None: the documented default.
    schema_version : int
        One of :data:`READABLE_SCHEMAS`.
    """

    labels: tuple[str, ...]
    default_fusion: str
    quantization: str
    patch: Patch
    spectrograms: dict[str, Spectrogram]
    evaluation: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    open_set: OpenSet | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``manifest.json`` holds)."""
        data: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "schema_version": self.schema_version,
            "labels": list(self.labels),
            "default_fusion": self.default_fusion,
            "quantization": self.quantization,
            "patch": self.patch.to_dict(),
            "spectrograms": {k: s.to_dict() for k, s in self.spectrograms.items()},
        }
        for key in ("evaluation", "provenance"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.open_set is not None:
            data["open_set"] = self.open_set.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> Manifest:
        """Check a parsed manifest against the schema and rebuild it.

        Parameters
        ----------
        data : Any
            The parsed JSON.
        where : str
            Names the bundle at the start of every message (e.g. ``bundle 'x.easc'``).

        Raises
        ------
        BundleError
            One line, for the first violation found.
        """
        if not isinstance(data, dict):
            raise BundleError(f"{where}: {MANIFEST_NAME} is not a JSON object")
        if data.get("format") != BUNDLE_FORMAT:
            raise BundleError(
                f"{where} is not an edge-asc bundle (format is {short(data.get('format'))}, "
                f"expected {BUNDLE_FORMAT!r})"
            )
        version = data.get("schema_version")
        if version not in READABLE_SCHEMAS or not is_int(version):
            newer = is_int(version) and version > SCHEMA_VERSION
            hint = "upgrade edge-asc to load it" if newer else "re-export it with this edge-asc"
            raise BundleError(
                f"{where} has manifest schema version {short(version)}, but this edge-asc "
                f"reads version {_readable()} ({hint})"
            )
        try:
            return _parse(data, version)
        except SchemaViolation as exc:
            raise BundleError(f"{where}: invalid manifest: {exc}") from None


def _readable() -> str:
    """``1, 2 or 3``: the schema versions this edge-asc loads, in words."""
    *head, last = map(str, READABLE_SCHEMAS)
    return f"{', '.join(head)} or {last}" if head else last


def _parse(data: dict[str, Any], version: int) -> Manifest:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        bad(f"unknown field(s) {names(unknown)}")

    labels = data.get("labels")
    if not isinstance(labels, list) or not labels:
        bad("'labels' must be a non-empty list of class names")
    if len(labels) > MAX_LABELS:
        bad(f"{len(labels)} labels (at most {MAX_LABELS})")
    for label in labels:
        if not isinstance(label, str) or not label.strip() or CONTROL.search(label):
            bad(f"label {short(label)} is not a usable class name")
        if len(label) > 200:
            bad(f"label {short(label)} is longer than 200 characters")
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        bad(f"duplicated label(s) {names(duplicated)}")

    fusion = data.get("default_fusion")
    if fusion not in FUSIONS:
        bad(f"unknown default_fusion {short(fusion)} (expected one of {', '.join(FUSIONS)})")
    quantization = data.get("quantization")
    if quantization not in QUANTIZATIONS:
        bad(
            f"unknown quantization {short(quantization)} "
            f"(expected one of {', '.join(QUANTIZATIONS)})"
        )

    raw_patch = data.get("patch")
    if not isinstance(raw_patch, dict) or set(raw_patch) != {"bins", "frames"}:
        bad("'patch' must be an object with exactly 'bins' and 'frames'")
    for key in ("bins", "frames"):
        if not is_int(raw_patch[key]) or raw_patch[key] < 1:
            bad(f"patch {key} must be a positive integer, got {short(raw_patch[key])}")
    if raw_patch["frames"] > MAX_PATCH_FRAMES:
        bad(f"patch frames {raw_patch['frames']} is over the limit of {MAX_PATCH_FRAMES}")
    patch = Patch(bins=raw_patch["bins"], frames=raw_patch["frames"])

    for key in ("evaluation", "provenance"):
        if key in data and not isinstance(data[key], dict):
            bad(f"{key!r} must be an object")

    raw_specs = data.get("spectrograms")
    if not isinstance(raw_specs, dict) or not raw_specs:
        bad("'spectrograms' must be a non-empty object")
    spectrograms: dict[str, Spectrogram] = {}
    files: set[str] = set()
    for kind, entry in raw_specs.items():
        spec = _spectrogram(kind, entry, version, patch, quantization, len(labels))
        for member in spec.members:
            if member.file in files:
                bad(f"file {member.file!r} is listed more than once")
            files.add(member.file)
        spectrograms[kind] = spec

    return Manifest(
        labels=tuple(labels),
        default_fusion=fusion,
        quantization=quantization,
        patch=patch,
        spectrograms=spectrograms,
        evaluation=data.get("evaluation"),
        provenance=data.get("provenance"),
        open_set=OpenSet.from_dict(data["open_set"], labels) if "open_set" in data else None,
        schema_version=version,
    )


def _spectrogram(
    kind: str, entry: Any, version: int, patch: Patch, quantization: str, n_classes: int
) -> Spectrogram:
    """Check one spectrogram entry, and that it fits the patch and the labels."""
    if kind not in KINDS:
        bad(f"unknown spectrogram kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not isinstance(entry, dict):
        bad(f"spectrogram {kind!r} must be an object")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        bad(f"{kind}: unknown field(s) {names(unknown)}")
    for key in ("file", "sha256", "bytes", "features", "norm", "model"):
        if key not in entry:
            bad(f"{kind}: missing {key!r}")
    tflite = Member.from_dict(entry, kind)
    onnx = None
    if "onnx" in entry:
        if not isinstance(entry["onnx"], dict) or set(entry["onnx"]) != _MEMBER_KEYS:
            bad(f"{kind}: 'onnx' must be an object with exactly 'file', 'sha256' and 'bytes'")
        onnx = Member.from_dict(entry["onnx"], f"{kind} onnx")
        if version < 2:
            bad(f"{kind}: an 'onnx' member needs schema version 2")
    for key in ("features", "norm"):
        if not isinstance(entry[key], dict):
            bad(f"{kind}: {key!r} must be an object")
    if "accuracy" in entry and not isinstance(entry["accuracy"], dict):
        bad(f"{kind}: 'accuracy' must be an object")
    model = ModelSpec.from_dict(entry["model"], kind)

    try:
        features = FeatureConfig.from_dict(entry["features"])
    except FeatureConfigError as exc:
        bad(f"{kind}: invalid feature config ({exc})")
    if features.n_bins != patch.bins:
        bad(f"{kind}: features have {features.n_bins} bins, the patch has {patch.bins}")
    span = patch.frames * features.hop_length / features.sample_rate
    if span > MAX_PATCH_SECONDS:
        bad(f"{kind}: a patch spans {span:.0f} s of audio (at most {MAX_PATCH_SECONDS:.0f} s)")

    norm_data = entry["norm"]
    if set(norm_data) != {"mean", "std"} or not all(
        isinstance(norm_data[k], list) and len(norm_data[k]) == patch.bins for k in norm_data
    ):
        lengths = [len(v) for v in norm_data.values() if isinstance(v, list)]
        if set(norm_data) == {"mean", "std"} and lengths and len(set(lengths)) == 1:
            bad(f"{kind}: normalisation stats have {lengths[0]} bins, the patch has {patch.bins}")
        bad(f"{kind}: invalid normalisation stats (need 'mean' and 'std', {patch.bins} numbers)")
    if not all(is_number(v) for k in ("mean", "std") for v in norm_data[k]):
        bad(f"{kind}: invalid normalisation stats (not all finite numbers)")
    try:
        norm = NormStats.from_dict(norm_data)
    except ValueError as exc:
        bad(f"{kind}: invalid normalisation stats ({exc})")

    reference = None
    if "reference" in entry:
        copies = {"tflite"} | ({"onnx"} if onnx is not None else set())
        reference = Reference.from_dict(entry["reference"], kind, n_classes, copies)
        check_agreement(reference, quantization, kind)
    return Spectrogram(
        kind=kind,
        tflite=tflite,
        features=features,
        norm=norm,
        model=model,
        onnx=onnx,
        accuracy=entry.get("accuracy"),
        reference=reference,
    )
