"""Tests for edge_asc.bundle: the round trip, and every way a bad bundle is refused.

The loader never parses TFLite, so the models here are small arbitrary byte strings.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_asc.bundle import (
    BUNDLE_SUFFIX,
    SCHEMA_VERSION,
    Bundle,
    BundleError,
    OpenSet,
    format_info,
    load_bundle,
    write_bundle,
)
from edge_asc.bundle import archive as bundle_module
from edge_asc.features import FeatureConfig, NormStats

LABELS = ["chainsaw", "clock_tick", "crackling_fire", "crying_baby", "dog"]
MEMBERS = {
    "logmel.tflite": b"TFL3 logmel model " * 40,
    "cqt.tflite": b"TFL3 cqt model bytes " * 30,
}


def _entry(kind: str, accuracy: dict[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": f"{kind}.tflite",
        "features": FeatureConfig().to_dict(),
        "norm": NormStats(mean=np.zeros(128), std=np.ones(128)).to_dict(),
        "model": {"name": "joint", "width": 0.25, "params": 353674, "macs_per_patch": 120900000},
    }
    if accuracy is not None:
        entry["accuracy"] = accuracy
    return entry


def _manifest() -> dict[str, Any]:
    return {
        "format": "edge-asc-bundle",
        "schema_version": SCHEMA_VERSION,
        "labels": list(LABELS),
        "default_fusion": "prod",
        "quantization": "int8",
        "patch": {"bins": 128, "frames": 128},
        "spectrograms": {
            "logmel": _entry("logmel", {"patch": 0.8125, "clip": 0.9}),
            "cqt": _entry("cqt"),
        },
        "evaluation": {
            "float32": {"accuracy": 0.9, "kib": 2800.5},
            "int8": {"accuracy": 0.875, "kib": 710.25},
        },
        "provenance": {
            "run": "runs/joint-fold4",
            "dataset": "esc10",
            "fold": 4,
            "created": "2026-05-09",
            "versions": {"edge-asc": "0.1.0", "tensorflow": "2.21.0"},
        },
    }


def _filled(manifest: dict[str, Any], members: dict[str, bytes]) -> dict[str, Any]:
    """``manifest`` with sha256 and bytes filled in, as write_bundle does."""
    manifest = copy.deepcopy(manifest)
    for entry in manifest["spectrograms"].values():
        blob = members[entry["file"]]
        entry["sha256"] = hashlib.sha256(blob).hexdigest()
        entry["bytes"] = len(blob)
    return manifest


def _raw_bundle(
    path: Path,
    manifest: Any,
    members: dict[str, bytes] | None = None,
    extra: list[tuple[str, bytes]] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a zip by hand, bypassing write_bundle's checks (to build bad bundles)."""
    members = MEMBERS if members is None else members
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("manifest.json", raw)
        for name, data in members.items():
            archive.writestr(name, data)
        for name, data in extra or []:
            archive.writestr(zipfile.ZipInfo(name), data)
    return path


def _refused(path: Path, *fragments: str, kinds: list[str] | None = None) -> str:
    """Load ``path``, expect a one-line BundleError naming it and containing ``fragments``."""
    with pytest.raises(BundleError) as info:
        load_bundle(path, kinds)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / f"model{BUNDLE_SUFFIX}"
    write_bundle(path, _manifest(), MEMBERS)
    return path


# ---------------------------------------------------------------------------------------------
# Round trip


def test_round_trip(good: Path) -> None:
    loaded = load_bundle(good)
    assert isinstance(loaded, Bundle)
    assert loaded.path == good
    assert loaded.labels == tuple(LABELS)
    assert loaded.default_fusion == "prod"
    assert loaded.quantization == "int8"
    assert list(loaded.models) == ["logmel", "cqt"]  # manifest order is kept
    for kind, model in loaded.models.items():
        assert model.kind == kind
        assert model.model_bytes == MEMBERS[f"{kind}.tflite"]
        assert model.features == FeatureConfig().resolved()
        np.testing.assert_array_equal(model.norm.mean, np.zeros(128))
        np.testing.assert_array_equal(model.norm.std, np.ones(128))
        assert model.info["sha256"] == hashlib.sha256(model.model_bytes).hexdigest()
        assert model.info["bytes"] == len(model.model_bytes)
        assert model.info["model"]["name"] == "joint"
    assert loaded.models["logmel"].info["accuracy"] == {"patch": 0.8125, "clip": 0.9}
    assert loaded.manifest["provenance"]["fold"] == 4
    assert loaded.manifest["evaluation"]["int8"]["accuracy"] == 0.875


def test_archive_layout(good: Path) -> None:
    with zipfile.ZipFile(good) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == ["manifest.json", "logmel.tflite", "cqt.tflite"]
    assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in infos)
    assert sorted(p.name for p in good.parent.iterdir()) == [good.name]


def test_write_does_not_modify_the_callers_manifest(tmp_path: Path) -> None:
    manifest = _manifest()
    before = copy.deepcopy(manifest)
    write_bundle(tmp_path / "a.easc", manifest, MEMBERS)
    assert manifest == before


def test_writing_is_deterministic(tmp_path: Path) -> None:
    write_bundle(tmp_path / "a.easc", _manifest(), MEMBERS)
    write_bundle(tmp_path / "b.easc", _manifest(), MEMBERS)
    assert (tmp_path / "a.easc").read_bytes() == (tmp_path / "b.easc").read_bytes()


def test_write_accepts_numpy_values_and_default_file_names(tmp_path: Path) -> None:
    manifest = _manifest()
    for entry in manifest["spectrograms"].values():
        del entry["file"]
        entry["model"]["params"] = np.int64(353674)
        entry["norm"]["mean"] = np.zeros(128)
    write_bundle(tmp_path / "np.easc", manifest, MEMBERS)
    loaded = load_bundle(tmp_path / "np.easc")
    assert loaded.models["cqt"].info["file"] == "cqt.tflite"
    assert loaded.models["cqt"].info["model"]["params"] == 353674


def test_write_replaces_an_existing_bundle(good: Path) -> None:
    manifest = _manifest()
    manifest["default_fusion"] = "max"
    write_bundle(good, manifest, MEMBERS)
    assert load_bundle(good).default_fusion == "max"


# ---------------------------------------------------------------------------------------------
# Selecting spectrograms


def test_select(good: Path) -> None:
    loaded = load_bundle(good)
    assert list(loaded.select(None)) == ["logmel", "cqt"]
    assert list(loaded.select(["cqt", "logmel"])) == ["cqt", "logmel"]
    assert list(loaded.select(["cqt"])) == ["cqt"]
    assert list(loaded.select("logmel")) == ["logmel"]  # a bare string is one kind
    with pytest.raises(BundleError) as info:
        loaded.select(["logmel", "gam"])
    message = str(info.value)
    assert message == f"bundle '{good}' has no 'gam' spectrogram (it has: logmel, cqt)"
    with pytest.raises(BundleError, match="no spectrogram requested"):
        loaded.select([])


def test_load_with_kinds(good: Path) -> None:
    loaded = load_bundle(good, ["cqt"])
    assert list(loaded.models) == ["cqt"]
    assert list(loaded.manifest["spectrograms"]) == ["logmel", "cqt"]  # manifest stays whole
    _refused(good, "has no 'gam' spectrogram", "(it has: logmel, cqt)", kinds=["gam"])


# ---------------------------------------------------------------------------------------------
# Refusals: the file and the archive


def test_refuses_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "absent.easc", "does not exist")


def test_refuses_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.easc"
    folder.mkdir()
    _refused(folder, "is a directory")


@pytest.mark.parametrize(
    "content", [b"", b"this is not a zip archive\n", b"PK\x03\x04 garbage"], ids=repr
)
def test_refuses_non_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.easc"
    path.write_bytes(content)
    _refused(path, "not a zip file, or truncated")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_refuses_truncated_zip(good: Path, keep: float) -> None:
    data = good.read_bytes()
    good.write_bytes(data[: int(len(data) * keep)])
    _refused(good, "not a valid bundle")


def test_refuses_crc_error(tmp_path: Path) -> None:
    members = {"logmel.tflite": b"A" * 64 + b"B" * 64, "cqt.tflite": b"cqt model"}
    path = _raw_bundle(
        tmp_path / "crc.easc",
        _filled(_manifest(), members),
        members,
        compression=zipfile.ZIP_STORED,
    )
    data = bytearray(path.read_bytes())
    offset = data.index(b"A" * 64 + b"B" * 64)
    data[offset + 70] ^= 0x01  # one flipped bit in the stored model bytes
    path.write_bytes(bytes(data))
    _refused(path, "is corrupt", "'logmel.tflite'", "CRC")


def test_refuses_corrupt_deflate_stream(tmp_path: Path) -> None:
    members = {"logmel.tflite": bytes(range(256)) * 64, "cqt.tflite": b"cqt model"}
    path = _raw_bundle(tmp_path / "z.easc", _filled(_manifest(), members), members)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("logmel.tflite")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start, start + info.compress_size):
        data[i] = 0xFF  # not a valid deflate stream
    path.write_bytes(bytes(data))
    _refused(path, "'logmel.tflite'")


def test_refuses_missing_manifest(tmp_path: Path) -> None:
    path = tmp_path / "nomanifest.easc"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("logmel.tflite", b"model")
    _refused(path, "has no manifest.json")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b'{"format": NaN}', "is not valid JSON"),
        (b'{"format": "edge-asc-bundle", "format": "x"}', "duplicate key 'format'"),
        (b"[1, 2, 3]", "is not a JSON object"),
        (b'"edge-asc-bundle"', "is not a JSON object"),
    ],
)
def test_refuses_bad_manifest_json(tmp_path: Path, raw: bytes, fragment: str) -> None:
    path = _raw_bundle(tmp_path / "json.easc", raw)
    _refused(path, fragment)


@pytest.mark.parametrize("value", ["tflite-bundle", None, 1])
def test_refuses_wrong_format(tmp_path: Path, value: Any) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    manifest["format"] = value
    _refused(_raw_bundle(tmp_path / "f.easc", manifest), "is not an edge-asc bundle")


def test_refuses_missing_format(tmp_path: Path) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    del manifest["format"]
    _refused(_raw_bundle(tmp_path / "f.easc", manifest), "is not an edge-asc bundle")


@pytest.mark.parametrize(
    ("version", "fragments"),
    [
        (5, ("schema version 5", "reads version 1, 2, 3 or 4", "upgrade edge-asc")),
        (0, ("schema version 0", "reads version 1, 2, 3 or 4", "re-export")),
        ("1", ("schema version '1'", "reads version 1, 2, 3 or 4")),
        (True, ("schema version True", "reads version 1, 2, 3 or 4")),
        (None, ("schema version None", "reads version 1, 2, 3 or 4")),
    ],
)
def test_refuses_other_schema_versions(
    tmp_path: Path, version: Any, fragments: tuple[str, ...]
) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    manifest["schema_version"] = version
    _refused(_raw_bundle(tmp_path / "v.easc", manifest), *fragments)


def test_fitted_thresholds_round_trip_and_are_checked(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["open_set"] = {
        "threshold": 0.4,
        "per_label": {"dog": 0.7},
        "method": "background class + threshold",
        "fitted": {"held_out_clips": 529},
    }
    path = tmp_path / "fitted.easc"
    write_bundle(path, manifest, MEMBERS)
    spec = load_bundle(path).spec
    assert spec is not None and spec.open_set == OpenSet(
        0.4, {"dog": 0.7}, "background class + threshold", {"held_out_clips": 529}
    )
    assert load_bundle(good_path(tmp_path)).spec.open_set is None  # type: ignore[union-attr]
    for bad, fragment in [
        ({"threshold": 1.5}, "between 0 and 1"),
        ({"threshold": "high"}, "must be a number"),
        ({"per_label": {"dog": 0.5}}, "must be a number"),  # no default threshold
        ({"threshold": 0.5, "per_label": {"parrot": 0.5}}, "the bundle lacks"),
        ({"threshold": 0.5, "margin": 1}, "unknown open_set field"),
        ([0.5], "'open_set' must be an object"),
    ]:
        broken = _filled(_manifest(), MEMBERS)
        broken["open_set"] = bad
        _refused(_raw_bundle(tmp_path / "bad.easc", broken), fragment)


def good_path(folder: Path) -> Path:
    """A valid bundle without fitted thresholds (as every bundle before schema 3)."""
    path = folder / "plain.easc"
    write_bundle(path, _manifest(), MEMBERS)
    return path


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../evil.tflite", "a/../../b", "sub\\x.tflite", "C:evil", "a//b", "./x"]
)
def test_refuses_unsafe_member_names(tmp_path: Path, name: str) -> None:
    # The unsafe entry is not even listed in the manifest: every entry is checked.
    path = _raw_bundle(tmp_path / "unsafe.easc", _filled(_manifest(), MEMBERS), extra=[(name, b"")])
    _refused(path, "escapes the bundle", repr(name))


def test_refuses_listed_file_missing_from_archive(tmp_path: Path) -> None:
    members = {"logmel.tflite": MEMBERS["logmel.tflite"]}
    path = _raw_bundle(tmp_path / "m.easc", _filled(_manifest(), MEMBERS), members)
    _refused(path, "is incomplete", "'cqt.tflite'", "not in the archive")


@pytest.mark.parametrize("extra", ["notes.txt", "gam.tflite", "models/", "models/x.tflite"])
def test_refuses_unlisted_members(tmp_path: Path, extra: str) -> None:
    path = _raw_bundle(
        tmp_path / "x.easc", _filled(_manifest(), MEMBERS), extra=[(extra, b"payload")]
    )
    _refused(path, "tampered", "unlisted member", repr(extra))


def test_refuses_duplicate_members(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        path = _raw_bundle(
            tmp_path / "dup.easc",
            _filled(_manifest(), MEMBERS),
            extra=[("cqt.tflite", b"evil twin")],
        )
    _refused(path, "tampered", "'cqt.tflite' appears twice")


def test_refuses_sha256_mismatch(tmp_path: Path) -> None:
    members = dict(MEMBERS)
    original = members["cqt.tflite"]
    members["cqt.tflite"] = original[:-1] + bytes([original[-1] ^ 1])  # same size
    path = _raw_bundle(tmp_path / "sha.easc", _filled(_manifest(), MEMBERS), members)
    _refused(path, "tampered", "SHA-256 of 'cqt.tflite'")


def test_refuses_size_mismatch(tmp_path: Path) -> None:
    members = dict(MEMBERS)
    members["cqt.tflite"] = MEMBERS["cqt.tflite"] + b"trailing payload"
    path = _raw_bundle(tmp_path / "size.easc", _filled(_manifest(), MEMBERS), members)
    _refused(path, "tampered", "'cqt.tflite' is", "the manifest says")


def test_refuses_declared_size_over_limit(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_module, "MAX_MEMBER_BYTES", 100)
    _refused(good, "declares", "uncompressed", "limit 100")


def test_refuses_total_size_over_limit(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_module, "MAX_TOTAL_BYTES", 1000)
    _refused(good, "its members declare", "limit 1000")


# ---------------------------------------------------------------------------------------------
# Refusals: the manifest schema (checked the same way on write and on load)


def _set(path: str, value: Any) -> Any:
    """A manifest edit: set (or with ``...`` delete) the field at a dotted path."""

    def edit(manifest: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return edit


SCHEMA_CASES = [
    pytest.param(_set("labels", []), "'labels' must be a non-empty list", id="labels-empty"),
    pytest.param(_set("labels", "dog"), "'labels' must be a non-empty list", id="labels-str"),
    pytest.param(_set("labels", ...), "'labels' must be a non-empty list", id="labels-missing"),
    pytest.param(_set("labels", ["dog", "cat", "dog"]), "duplicated label(s) 'dog'", id="dup"),
    pytest.param(_set("labels", ["dog", 3]), "label 3 is not", id="labels-int"),
    pytest.param(_set("labels", ["dog", " "]), "label ' ' is not", id="labels-blank"),
    pytest.param(_set("labels", ["dog", "a\nb"]), "label 'a\\nb' is not", id="labels-newline"),
    pytest.param(_set("default_fusion", "vote"), "unknown default_fusion 'vote'", id="fusion"),
    pytest.param(_set("quantization", "int4"), "unknown quantization 'int4'", id="quant"),
    pytest.param(_set("patch", {"bins": 128}), "'patch' must be an object", id="patch-keys"),
    pytest.param(_set("patch.frames", 0), "patch frames must be a positive", id="patch-zero"),
    pytest.param(_set("patch.bins", 64), "features have 128 bins, the patch has 64", id="bins"),
    pytest.param(_set("spectrograms", {}), "'spectrograms' must be a non-empty", id="no-specs"),
    pytest.param(_set("extra_field", 1), "unknown field(s) 'extra_field'", id="top-unknown"),
    pytest.param(_set("provenance", "me"), "'provenance' must be an object", id="provenance"),
    pytest.param(_set("evaluation", [1]), "'evaluation' must be an object", id="evaluation"),
    pytest.param(
        _set("spectrograms.mel", _entry("logmel")), "unknown spectrogram kind 'mel'", id="kind"
    ),
    pytest.param(_set("spectrograms.cqt", []), "spectrogram 'cqt' must be an object", id="entry"),
    pytest.param(_set("spectrograms.cqt.norm", ...), "cqt: missing 'norm'", id="norm-missing"),
    pytest.param(_set("spectrograms.cqt.oops", 1), "cqt: unknown field(s) 'oops'", id="unk"),
    pytest.param(
        _set("spectrograms.cqt.features.sample_rate", 10),
        "cqt: invalid feature config (sample rate 10 Hz is too low)",
        id="features-invalid",
    ),
    pytest.param(
        _set("spectrograms.cqt.features.colour", "blue"),
        "unknown feature settings: colour",
        id="features-unknown",
    ),
    pytest.param(
        _set("spectrograms.cqt.features.n_fft", "2048"),
        "cqt: invalid feature config",
        id="features-type",
    ),
    pytest.param(
        _set("spectrograms.cqt.features", [1]), "cqt: 'features' must be an object", id="feat-list"
    ),
    pytest.param(
        _set("spectrograms.cqt.norm.std", [0.0] * 128),
        "cqt: invalid normalisation stats",
        id="norm-std-zero",
    ),
    pytest.param(
        _set("spectrograms.cqt.norm.mean", [0.0] * 64),
        "cqt: invalid normalisation stats",
        id="norm-unequal",
    ),
    pytest.param(
        lambda m: m["spectrograms"]["cqt"].update(
            norm=NormStats(mean=np.zeros(64), std=np.ones(64)).to_dict()
        ),
        "cqt: normalisation stats have 64 bins, the patch has 128",
        id="norm-length",
    ),
    pytest.param(
        _set("spectrograms.cqt.norm.mean", ...), "cqt: invalid normalisation stats", id="norm-key"
    ),
    pytest.param(
        _set("spectrograms.cqt.norm.mean", ["x"] * 128),
        "cqt: invalid normalisation stats",
        id="norm-str",
    ),
    pytest.param(
        _set("spectrograms.cqt.model", {"width": 1.0}), "cqt: model name must be", id="model-name"
    ),
    pytest.param(
        _set("spectrograms.cqt.model.params", -1), "model params must be", id="model-params"
    ),
    pytest.param(
        _set("spectrograms.cqt.model.macs_per_patch", "many"), "macs_per_patch", id="model-macs"
    ),
    pytest.param(
        _set("spectrograms.cqt.accuracy", 0.9), "cqt: 'accuracy' must be an object", id="accuracy"
    ),
]


@pytest.mark.parametrize(("edit", "fragment"), SCHEMA_CASES)
def test_load_refuses_invalid_manifest(tmp_path: Path, edit: Any, fragment: str) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    edit(manifest)
    path = _raw_bundle(tmp_path / "schema.easc", manifest)
    _refused(path, fragment)


@pytest.mark.parametrize(("edit", "fragment"), SCHEMA_CASES)
def test_write_refuses_invalid_manifest(tmp_path: Path, edit: Any, fragment: str) -> None:
    manifest = _manifest()
    edit(manifest)
    path = tmp_path / "schema.easc"
    with pytest.raises(BundleError) as info:
        write_bundle(path, manifest, MEMBERS)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and fragment in message, message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("file", "fragment"),
    [
        ("../cqt.tflite", "is not a plain member name"),
        ("sub/cqt.tflite", "is not a plain member name"),
        ("manifest.json", "is not a plain member name"),
        (7, "file 7 is not a plain member name"),
        ("logmel.tflite", "'logmel.tflite' is listed more than once"),
    ],
)
def test_refuses_bad_file_entries(tmp_path: Path, file: Any, fragment: str) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    manifest["spectrograms"]["cqt"]["file"] = file
    _refused(_raw_bundle(tmp_path / "file.easc", manifest), fragment)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("sha256", "ABC", "sha256 must be 64 lowercase hex"),
        ("sha256", "A" * 64, "sha256 must be 64 lowercase hex"),
        ("bytes", "12", "bytes must be a non-negative integer"),
        ("bytes", True, "bytes must be a non-negative integer"),
        ("bytes", -1, "bytes must be a non-negative integer"),
    ],
)
def test_refuses_bad_hash_fields(tmp_path: Path, key: str, value: Any, fragment: str) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    manifest["spectrograms"]["cqt"][key] = value
    _refused(_raw_bundle(tmp_path / "hash.easc", manifest), "cqt: " + fragment)


def test_error_messages_stay_on_one_line_for_odd_names(tmp_path: Path) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    manifest["quantization"] = "int8\nsecond line"
    path = _raw_bundle(tmp_path / "odd\nname.easc", manifest)
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    assert "\n" not in str(info.value)
    assert "odd\\nname.easc" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Writing: member checks and atomicity


def test_write_refuses_missing_member(tmp_path: Path) -> None:
    path = tmp_path / "w.easc"
    with pytest.raises(BundleError, match=r"no bytes given for listed file\(s\) 'cqt.tflite'"):
        write_bundle(path, _manifest(), {"logmel.tflite": b"x"})
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_unlisted_member(tmp_path: Path) -> None:
    path = tmp_path / "w.easc"
    with pytest.raises(BundleError, match=r"'gam.tflite' are not listed"):
        write_bundle(path, _manifest(), {**MEMBERS, "gam.tflite": b"x"})
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_non_json_manifest(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["provenance"]["created"] = object()
    with pytest.raises(BundleError, match="is not plain JSON"):
        write_bundle(tmp_path / "w.easc", manifest, MEMBERS)
    manifest = _manifest()
    manifest["evaluation"]["int8"]["accuracy"] = float("nan")
    with pytest.raises(BundleError, match="is not plain JSON"):
        write_bundle(tmp_path / "w.easc", manifest, MEMBERS)
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_directory_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "w.easc"
    with pytest.raises(BundleError) as info:
        write_bundle(path, _manifest(), MEMBERS)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


class Boom(Exception):
    pass


def test_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_writestr = zipfile.ZipFile.writestr
    calls = []

    def failing_writestr(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        calls.append(args[0])
        if len(calls) == 2:  # after the manifest, while writing the first model
            raise Boom
        real_writestr(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(Boom):
        write_bundle(tmp_path / "w.easc", _manifest(), MEMBERS)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_keeps_previous_bundle(
    good: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = good.read_bytes()

    def failing_writestr(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        raise Boom

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    manifest = _manifest()
    manifest["default_fusion"] = "mean"
    with pytest.raises(Boom):
        write_bundle(good, manifest, MEMBERS)
    assert good.read_bytes() == before
    assert sorted(p.name for p in good.parent.iterdir()) == [good.name]


# ---------------------------------------------------------------------------------------------
# format_info


def test_format_info(good: Path) -> None:
    text = format_info(load_bundle(good))
    assert str(good) in text
    assert "labels (5): " + ", ".join(LABELS) in text
    assert "quantization: int8" in text
    assert "default fusion: prod" in text
    assert "128 bins x 128 frames" in text
    for kind, blob in (("logmel", MEMBERS["logmel.tflite"]), ("cqt", MEMBERS["cqt.tflite"])):
        row = next(line for line in text.splitlines() if line.strip().startswith(kind + " "))
        assert f"{kind}.tflite" in row
        assert f"{len(blob) / 1024:.1f} KiB" in row
        assert "joint" in row and "0.25" in row and "353,674" in row
        assert "120.9 M" in row  # MACs per patch
        # 44100 / (256 * 128) patches per second.
        assert "162.7 M" in row  # MACs per second of audio
        assert "44100 Hz" in row
    assert "patch=0.8125 clip=0.9" in text
    # Provenance and the evaluation table.
    assert "run: runs/joint-fold4" in text
    assert "fold: 4" in text
    assert "tensorflow=2.21.0" in text
    evaluation = text.split("evaluation:")[1].splitlines()
    assert evaluation[1].split() == ["accuracy", "kib"]
    assert evaluation[2].split() == ["float32", "0.9", "2800"]  # 4 significant digits
    assert evaluation[3].split() == ["int8", "0.875", "710.2"]


def test_format_info_without_optional_parts(tmp_path: Path) -> None:
    manifest = _manifest()
    del manifest["evaluation"], manifest["provenance"]
    manifest["spectrograms"]["cqt"]["model"] = {"name": "cdnn"}
    path = tmp_path / "bare.easc"
    write_bundle(path, manifest, MEMBERS)
    text = format_info(load_bundle(path, ["cqt"]))
    assert "provenance" not in text and "evaluation" not in text
    row = next(line for line in text.splitlines() if line.strip().startswith("cqt "))
    assert "cdnn" in row and "-" in row


def test_format_info_renders_nested_evaluation(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["evaluation"] = {"note": "fold 4", "modes": {"int8": {"acc": 0.5}}, "n": [1, 2]}
    path = tmp_path / "nested.easc"
    write_bundle(path, manifest, MEMBERS)
    text = format_info(load_bundle(path))
    assert "note: fold 4" in text
    assert "n: [1, 2]" in text
    assert "int8" in text and "0.5" in text


# ---------------------------------------------------------------------------------------------
# The optional ONNX member (schema version 2)

ONNX_MEMBERS = {**MEMBERS, "logmel.onnx": b"ONNX logmel graph " * 25}


def _with_onnx() -> dict[str, Any]:
    manifest = _manifest()
    manifest["spectrograms"]["logmel"]["onnx"] = {"file": "logmel.onnx"}
    return manifest


def test_onnx_member_round_trips_and_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "onnx.easc"
    write_bundle(path, _with_onnx(), ONNX_MEMBERS)
    bundle = load_bundle(path)
    assert bundle.models["logmel"].onnx_bytes == ONNX_MEMBERS["logmel.onnx"]
    assert bundle.models["cqt"].onnx_bytes is None
    record = bundle.manifest["spectrograms"]["logmel"]["onnx"]
    assert record["bytes"] == len(ONNX_MEMBERS["logmel.onnx"])


def test_loaded_models_are_read_when_opened_and_checked_again(tmp_path: Path) -> None:
    """A loaded bundle holds no model bytes (a process runs one copy of each model, the
    TFLite or the ONNX one); reading them later checks them against the verified manifest
    again, so a bundle replaced on disk in between is refused, not run."""
    path = tmp_path / "onnx.easc"
    write_bundle(path, _with_onnx(), ONNX_MEMBERS)
    bundle = load_bundle(path)
    logmel = bundle.models["logmel"]
    assert logmel.has_onnx and not bundle.models["cqt"].has_onnx
    assert not any(isinstance(v, bytes) for v in vars(logmel).values())

    other = dict(ONNX_MEMBERS, **{"logmel.onnx": b"ONNX another graph " * 25})
    write_bundle(path, _with_onnx(), other)  # a valid bundle, but not the one loaded
    assert logmel.model_bytes == MEMBERS["logmel.tflite"]  # unchanged member: still fine
    with pytest.raises(BundleError, match=r"changed on disk after it was loaded.*logmel\.onnx"):
        _ = logmel.onnx_bytes
    path.write_bytes(b"not a zip any more " * 64)
    with pytest.raises(BundleError, match="is not a valid bundle"):
        _ = logmel.model_bytes
    path.unlink()
    with pytest.raises(BundleError, match=r"onnx\.easc"):
        _ = logmel.model_bytes


def test_schema_1_bundles_still_load(tmp_path: Path) -> None:
    manifest = _filled(_manifest(), MEMBERS)
    manifest["schema_version"] = 1
    bundle = load_bundle(_raw_bundle(tmp_path / "v1.easc", manifest))
    assert bundle.models["logmel"].onnx_bytes is None


def test_refuses_a_tampered_onnx_member(tmp_path: Path) -> None:
    good_path = tmp_path / "onnx.easc"
    write_bundle(good_path, _with_onnx(), ONNX_MEMBERS)
    manifest = load_bundle(good_path).manifest
    tampered = {**ONNX_MEMBERS, "logmel.onnx": b"ONNX logmel graph " * 24 + b"ONNX logmel grapH "}
    _refused(_raw_bundle(tmp_path / "t.easc", manifest, tampered), "SHA-256", "logmel.onnx")
    missing = dict(MEMBERS)
    _refused(_raw_bundle(tmp_path / "m.easc", manifest, missing), "incomplete", "logmel.onnx")


def test_refuses_an_onnx_member_in_schema_1(tmp_path: Path) -> None:
    write_bundle(tmp_path / "onnx.easc", _with_onnx(), ONNX_MEMBERS)
    manifest = load_bundle(tmp_path / "onnx.easc").manifest
    manifest["schema_version"] = 1
    _refused(_raw_bundle(tmp_path / "v1.easc", manifest, ONNX_MEMBERS), "needs schema version 2")


def test_refuses_a_malformed_onnx_record(tmp_path: Path) -> None:
    manifest = _with_onnx()
    manifest["spectrograms"]["logmel"]["onnx"] = {"file": "../x.onnx"}
    with pytest.raises(BundleError, match="not a plain member name"):
        write_bundle(tmp_path / "bad.easc", manifest, {**MEMBERS, "../x.onnx": b"x"})
