"""``edge-asc info``: a bundle described in plain text, for people deciding what to deploy.

It shows what the manifest promises (labels, front-end, patch, quantization), what each
model costs (size, parameters, MACs per patch and per second of audio), what was measured
at export, where the bundle came from and who signed it.
"""

from __future__ import annotations

from typing import Any

from edge_asc.bundle.common import one_line
from edge_asc.bundle.model import Bundle
from edge_asc.text import text_table


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
        f"signed: {_signer(bundle)}",
        f"labels ({len(bundle.labels)}): {', '.join(bundle.labels)}",
        f"quantization: {bundle.quantization}",
        f"default fusion: {bundle.default_fusion}",
        f"unknown threshold: {_open_set(bundle)}",
        f"patch: {patch['bins']} bins x {patch['frames']} frames",
        "",
        "spectrograms:",
    ]

    header = ["kind", "file", "size", "onnx", "model", "width", "params"]
    header += ["MACs/patch", "MACs/s audio", "rate", "accuracy"]
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
    lines += ["  " + row for row in text_table(header, rows)]

    open_set = bundle.spec.open_set if bundle.spec is not None else None
    if open_set is not None and (open_set.method or open_set.fitted):
        lines += ["", "open set:"]
        if open_set.method:
            lines.append(f"  method: {_value(open_set.method)}")
        if open_set.fitted:
            lines.append(f"  fitted: {_flat(open_set.fitted)}")

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


def _signer(bundle: Bundle) -> str:
    """``no``, or the signer's key fingerprint (and the trusted key file it matched)."""
    if bundle.signature is None:
        return "no"
    text = f"yes, Ed25519 key {bundle.signature.fingerprint}"
    if bundle.trusted_key is not None:
        text += f" (trusted: {bundle.trusted_key})"
    return text


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
            return text_table(["", *columns], rows)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += ["  " + line for line in _render(value)]
        else:
            lines.append(f"{key}: {_value(value)}")
    return lines


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
    return one_line(str(value))


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


def _open_set(bundle: Bundle) -> str:
    """The stored thresholds in one line, or the documented default."""
    from edge_asc.decision import DEFAULT_THRESHOLD

    fitted = bundle.spec.open_set if bundle.spec is not None else None
    if fitted is None:
        return f"{DEFAULT_THRESHOLD:g} (none fitted; the documented default)"
    per_label = ", ".join(f"{k} {v:g}" for k, v in fitted.per_label.items())
    on = "" if fitted.evidence == "top" else f" on {fitted.evidence} evidence"
    return f"{fitted.threshold:g} (fitted{on})" + (f"; per label: {per_label}" if per_label else "")
