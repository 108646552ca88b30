"""Hostile bundles: each is refused with one line, within a memory ceiling, without hanging.

A small corpus is generated here: zip bombs whose headers lie, a FIFO and a symlink to
/dev/zero given as the bundle, manifests with absurd or mistyped front-end sizes, label counts
that do not match the model, an ONNX copy that is another network, and signatures that are
missing, from the wrong key or broken by tampering. The size cases run the load in a child
process under ``RLIMIT_AS`` so that "refused before allocating" is measured, not assumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_asc.bundle import (
    BundleError,
    format_info,
    generate_key_pair,
    load_bundle,
    reference_outputs,
    sign_bundle,
    verify_member,
    write_bundle,
)
from edge_asc.cli import app
from edge_asc.features import FeatureConfig, NormStats

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "edge_asc" / "models" / "default.easc"
MEMORY_CEILING = 512 * 1024**2
"""Address-space limit of the child that loads a size case (importing numpy takes ~270 MB)."""

LABELS = [f"class_{i}" for i in range(10)]
FAKE = {"logmel.tflite": b"TFL3 fake logmel model " * 20}


def _manifest(labels: list[str] = LABELS, **features: Any) -> dict[str, Any]:
    return {
        "format": "edge-asc-bundle",
        "schema_version": 2,
        "labels": labels,
        "default_fusion": "max",
        "quantization": "int8",
        "patch": {"bins": 128, "frames": 128},
        "spectrograms": {
            "logmel": {
                "file": "logmel.tflite",
                "features": {**FeatureConfig(sample_rate=22050).to_dict(), **features},
                "norm": NormStats(mean=np.zeros(128), std=np.ones(128)).to_dict(),
                "model": {"name": "joint"},
            }
        },
    }


def _raw(path: Path, manifest: dict[str, Any], members: dict[str, bytes] = FAKE) -> Path:
    """A zip written by hand with correct member hashes but no manifest checks."""
    manifest = json.loads(json.dumps(manifest))
    entry = manifest["spectrograms"]["logmel"]
    for record in [entry, entry["onnx"]] if "onnx" in entry else [entry]:
        blob = members[record["file"]]
        record.update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _one_line_refusal(path: Path, *fragments: str, **kwargs: Any) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------------------------------------
# Size cases, in a child process under a memory ceiling

_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from edge_asc.bundle import BundleError, load_bundle
try:
    load_bundle(sys.argv[1])
except BundleError as exc:
    print(exc)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
    sys.exit(2)
print("loaded")
"""


def _load_in_child(path: Path) -> tuple[str, int]:
    """Load ``path`` in a child limited to :data:`MEMORY_CEILING`: (message, peak RSS KiB)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD.format(limit=MEMORY_CEILING), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert child.returncode == 2, (child.returncode, child.stdout, child.stderr[-2000:])
    lines = child.stdout.splitlines()
    assert len(lines) == 1 and str(path) in lines[0], child.stdout
    peak_kib = int(child.stderr.split()[-1])
    print(f"{path.name}: peak RSS {peak_kib / 1024:.0f} MiB: {lines[0]}")
    return lines[0], peak_kib


def _zeros_deflated(n_mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``n_mib`` MiB of zero bytes (built by repetition, fast)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(n_mib):
        crc = zlib.crc32(bytes(1 << 20), crc)
    return block * n_mib + compressor.flush(), crc


def _lying_zip(path: Path, entries: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip of deflated ``(name, stream, crc, declared size)`` entries, headers as given."""
    local, central = bytearray(), bytearray()
    for name, stream, crc, declared in entries:
        raw = name.encode()
        common = (0, 8, 0, 0x21, crc, len(stream), declared, len(raw), 0)  # flags .. extra
        central += (
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, *common, 0, 0, 0, 0o644 << 16, len(local)
            )
            + raw
        )
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, *common) + raw + stream
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(local), 0
    )
    path.write_bytes(bytes(local + central) + end)
    return path


def test_lying_zip_helper_is_a_valid_zip(tmp_path: Path) -> None:
    stream, crc = _zeros_deflated(2)
    path = _lying_zip(tmp_path / "honest.zip", [("zeros", stream, crc, 2 << 20)])
    with zipfile.ZipFile(path) as archive:
        assert archive.read("zeros") == bytes(2 << 20)


@pytest.fixture(scope="module")
def gigabyte_of_zeros() -> tuple[bytes, int]:
    return _zeros_deflated(1024)


def test_manifest_bomb_with_a_small_declared_size(tmp_path: Path, gigabyte_of_zeros) -> None:
    stream, crc = gigabyte_of_zeros  # ~1 MB on disk, 1 GiB inflated, declared as 100 bytes
    path = _lying_zip(tmp_path / "bomb.easc", [("manifest.json", stream, crc, 100)])
    message, _ = _load_in_child(path)
    assert "manifest.json" in message and ("corrupt" in message or "inflates past" in message)


def test_member_bomb_with_a_small_declared_size(tmp_path: Path, gigabyte_of_zeros) -> None:
    good = _raw(tmp_path / "good.easc", _manifest())
    with zipfile.ZipFile(good) as archive:
        manifest = archive.read("manifest.json")
    stream, crc = gigabyte_of_zeros
    entries = [
        ("manifest.json", zlib.compress(manifest)[2:-4], zlib.crc32(manifest), len(manifest)),
        ("logmel.tflite", stream, crc, len(FAKE["logmel.tflite"])),
    ]
    message, _ = _load_in_child(_lying_zip(tmp_path / "bomb.easc", entries))
    assert "'logmel.tflite'" in message


def test_member_declaring_a_gigabyte_is_refused_before_reading(
    tmp_path: Path, gigabyte_of_zeros
) -> None:
    stream, crc = gigabyte_of_zeros
    path = _lying_zip(tmp_path / "big.easc", [("logmel.tflite", stream, crc, 1 << 30)])
    message, _ = _load_in_child(path)
    assert "declares 1073741824 bytes" in message


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "model.easc"
    os.mkfifo(fifo)
    message, _ = _load_in_child(fifo)  # the child's timeout would catch a hang
    assert "is not a regular file" in message


def test_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.easc"
    link.symlink_to("/dev/zero")
    message, _ = _load_in_child(link)
    assert "is not a regular file" in message


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("n_fft", 2**28, "n_fft must be a power of two in 16..65536"),
        ("hop_length", 1, "hop_length 1 gives 22050 frames per second"),
    ],
)
def test_absurd_front_end_sizes_are_refused_in_a_memory_ceiling(
    tmp_path: Path, field: str, value: int, fragment: str
) -> None:
    path = _raw(tmp_path / f"{field}.easc", _manifest(**{field: value}))
    message, _ = _load_in_child(path)
    assert "invalid feature config" in message and fragment in message


# ---------------------------------------------------------------------------------------------
# Types, ranges and cross-checks of the manifest (in process)


@pytest.mark.parametrize(
    ("features", "fragment"),
    [
        ({"n_fft": 2048.5}, "n_fft must be an integer, got 2048.5"),
        ({"hop_length": "256"}, "hop_length must be a number, got '256'"),
        ({"n_bins": True}, "n_bins must be a number, got True"),
        ({"sample_rate": 10**9}, "above the limit"),
        ({"cqt_fmin": 0.01}, "the CQT's lowest bin needs"),
        ({"amin": 0}, "amin must be in (0, 1)"),
    ],
)
def test_mistyped_or_out_of_range_features(
    tmp_path: Path, features: dict[str, Any], fragment: str
) -> None:
    _one_line_refusal(_raw(tmp_path / "f.easc", _manifest(**features)), fragment)


def test_mistyped_patch_frames(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["patch"]["frames"] = 128.0
    _one_line_refusal(_raw(tmp_path / "p.easc", manifest), "patch frames must be a positive")
    manifest["patch"]["frames"] = 10**6
    _one_line_refusal(_raw(tmp_path / "p.easc", manifest), "over the limit of 4096")


def test_patch_spanning_minutes_is_refused(tmp_path: Path) -> None:
    manifest = _manifest(hop_length=2048)
    manifest["patch"]["frames"] = 4096  # 4096 * 2048 / 22050 = 380 s
    _one_line_refusal(_raw(tmp_path / "p.easc", manifest), "a patch spans 380 s")


# ---------------------------------------------------------------------------------------------
# Real models: label count, patch geometry, TFLite/ONNX agreement


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    """The shipped bundle's logmel and cqt models, opened on both backends."""
    from edge_asc.backends.onnx import OnnxModel
    from edge_asc.backends.tflite import TFLiteModel

    shipped = load_bundle(DEFAULT)
    logmel, cqt = shipped.models["logmel"], shipped.models["cqt"]
    tflite = TFLiteModel(logmel.model_bytes, threads=1)
    return {
        "bundle": shipped,
        "labels": [f"class_{i}" for i in range(tflite.n_classes)],
        "members": {
            "logmel.tflite": logmel.model_bytes,
            "logmel.onnx": logmel.onnx_bytes,
            "cqt.onnx": cqt.onnx_bytes,
        },
        "tflite": tflite,
        "onnx": OnnxModel(logmel.onnx_bytes, threads=1),
        "other_onnx": OnnxModel(cqt.onnx_bytes, threads=1),
    }


def _real_manifest(real: dict[str, Any], labels: list[str], onnx_file: str) -> dict[str, Any]:
    entry = dict(real["bundle"].manifest["spectrograms"]["logmel"])
    entry["onnx"] = {"file": onnx_file}
    reference = reference_outputs({"tflite": real["tflite"], "onnx": real["onnx"]}, 128, 128)
    entry["reference"] = reference.to_dict()
    manifest = {**_manifest(labels), "spectrograms": {"logmel": entry}}
    return manifest


def _write_real(path: Path, real: dict[str, Any], onnx_file: str = "logmel.onnx") -> Path:
    members = {"logmel.tflite": real["members"]["logmel.tflite"]}
    members[onnx_file] = real["members"][onnx_file]
    write_bundle(path, _real_manifest(real, real["labels"], onnx_file), members)
    return path


def test_an_exported_reference_verifies(tmp_path: Path, real: dict[str, Any]) -> None:
    member = load_bundle(_write_real(tmp_path / "ok.easc", real)).models["logmel"]
    member.check_model_io(real["tflite"].input_shape, real["tflite"].n_classes)
    verify_member(member, real["tflite"], real["onnx"])
    verify_member(member, onnx_model=real["onnx"])


@pytest.mark.parametrize("n_labels", [9, 15])
def test_label_count_other_than_the_model_output(
    tmp_path: Path, real: dict[str, Any], n_labels: int
) -> None:
    labels = [f"class_{i}" for i in range(n_labels)]
    manifest = _real_manifest(real, labels, "logmel.onnx")
    del manifest["spectrograms"]["logmel"]["reference"]  # old export: only the model can tell
    path = tmp_path / f"labels{n_labels}.easc"
    members = {k: v for k, v in real["members"].items() if k != "cqt.onnx"}
    write_bundle(path, manifest, members)
    member = load_bundle(path).models["logmel"]
    with pytest.raises(BundleError) as info:
        member.check_model_io(real["tflite"].input_shape, real["tflite"].n_classes)
    assert str(info.value) == (
        f"bundle '{path}': the logmel model has {len(real['labels'])} outputs, "
        f"the manifest lists {n_labels} labels"
    )
    # With a stored reference the manifest itself is inconsistent: refused at load.
    manifest = _real_manifest(real, labels, "logmel.onnx")
    raw_path = _raw(tmp_path / "ref.easc", manifest, members)
    _one_line_refusal(raw_path, f"must list {n_labels} probabilities")


def test_patch_geometry_other_than_the_model_input(tmp_path: Path, real: dict[str, Any]) -> None:
    member = load_bundle(_write_real(tmp_path / "ok.easc", real)).models["logmel"]
    with pytest.raises(BundleError, match=r"takes patches of shape \(128, 64, 1\), the manifest"):
        member.check_model_io((128, 64, 1), len(real["labels"]))


def test_onnx_copy_swapped_for_another_network(tmp_path: Path, real: dict[str, Any]) -> None:
    # The manifest's hashes match (as after a re-pack), but the ONNX copy is the cqt network.
    path = _write_real(tmp_path / "swapped.easc", real, onnx_file="cqt.onnx")
    member = load_bundle(path).models["logmel"]
    verify_member(member, tflite_model=real["tflite"])  # the TFLite copy is fine
    with pytest.raises(BundleError) as info:
        verify_member(member, real["tflite"], real["other_onnx"])
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "its logmel onnx model disagrees with the tflite output stored at export" in message


def test_stored_outputs_that_disagree_are_refused_at_load(
    tmp_path: Path, real: dict[str, Any]
) -> None:
    manifest = _real_manifest(real, real["labels"], "logmel.onnx")
    reference = manifest["spectrograms"]["logmel"]["reference"]
    tflite = reference["outputs"]["tflite"]
    # All the ONNX copy's mass on the class the TFLite copy ranks lowest: a gap of at least
    # 1 - 1/C, far outside any quantization's tolerance, whatever the model's outputs.
    reference["outputs"]["onnx"] = [float(i == int(np.argmin(tflite))) for i in range(len(tflite))]
    members = {k: v for k, v in real["members"].items() if k != "cqt.onnx"}
    path = _raw(tmp_path / "disagree.easc", manifest, members)
    _one_line_refusal(path, "its TFLite and ONNX copies disagree on the reference patch")


def test_bundles_without_a_reference_still_load_and_verify(
    tmp_path: Path, real: dict[str, Any]
) -> None:
    """Bundles exported before reference outputs were stored."""
    manifest = _real_manifest(real, real["labels"], "logmel.onnx")
    del manifest["spectrograms"]["logmel"]["reference"]
    members = {k: v for k, v in real["members"].items() if k != "cqt.onnx"}
    member = load_bundle(_raw(tmp_path / "old.easc", manifest, members)).models["logmel"]
    assert member.reference is None
    verify_member(member, real["tflite"], real["onnx"])


# ---------------------------------------------------------------------------------------------
# Signatures


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    release, release_pub, _ = generate_key_pair(folder / "release.pem")
    other, other_pub, _ = generate_key_pair(folder / "other.pem")
    return {"release": release, "release.pub": release_pub, "other": other, "other.pub": other_pub}


@pytest.fixture
def signed(tmp_path: Path, keys: dict[str, Path]) -> Path:
    path = tmp_path / "signed.easc"
    write_bundle(path, _manifest(), FAKE, signing_key=keys["release"])
    return path


def test_signature_valid(signed: Path, keys: dict[str, Path]) -> None:
    plain = load_bundle(signed)  # no trusted keys: verified, not required
    assert plain.signature is not None and plain.trusted_key is None
    trusted = load_bundle(signed, trusted_keys=[keys["other.pub"], keys["release.pub"]])
    assert trusted.trusted_key == keys["release.pub"]
    assert f"signed: yes, Ed25519 key {trusted.signature.fingerprint}" in format_info(trusted)


def test_signature_missing(tmp_path: Path, keys: dict[str, Path]) -> None:
    path = tmp_path / "unsigned.easc"
    write_bundle(path, _manifest(), FAKE)
    assert load_bundle(path).signature is None  # still loads unless signatures are required
    _one_line_refusal(path, "it is not signed", trusted_keys=[keys["release.pub"]])


def test_signature_from_an_untrusted_key(signed: Path, keys: dict[str, Path]) -> None:
    _one_line_refusal(signed, "which is not among the 1 trusted", trusted_keys=[keys["other.pub"]])


def _rewrite(path: Path, edit: Any) -> None:
    """Rewrite ``path`` with ``edit(name, data) -> data`` applied to every member."""
    with zipfile.ZipFile(path) as archive:
        items = [(name, archive.read(name)) for name in archive.namelist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in items:
            archive.writestr(name, edit(name, data))


def test_signature_broken_by_tampering_with_the_manifest(
    signed: Path, keys: dict[str, Path]
) -> None:
    _rewrite(signed, lambda n, d: d.replace(b'"max"', b'"prod"') if n == "manifest.json" else d)
    _one_line_refusal(signed, "tampered", "signature does not match the manifest")


def test_signature_moved_to_another_bundle(tmp_path: Path, signed: Path) -> None:
    other = tmp_path / "other.easc"
    write_bundle(other, _manifest(labels=[f"x{i}" for i in range(10)]), FAKE)
    with zipfile.ZipFile(signed) as archive:
        signature = archive.read("signature.json")
    with zipfile.ZipFile(other, "a") as archive:
        archive.writestr("signature.json", signature)
    _one_line_refusal(other, "signature does not match the manifest")


def test_signature_record_malformed(signed: Path) -> None:
    _rewrite(signed, lambda n, d: b'{"format": 1}' if n == "signature.json" else d)
    _one_line_refusal(signed, "invalid signature.json")


def test_sign_bundle_then_cli_refuses_the_wrong_key(tmp_path: Path, keys: dict[str, Path]) -> None:
    path = tmp_path / "later.easc"
    write_bundle(path, _manifest(), FAKE)
    before = load_bundle(path).manifest
    assert sign_bundle(path, keys["other"]).fingerprint == load_bundle(path).signature.fingerprint
    assert load_bundle(path).manifest == before
    result = CliRunner().invoke(app, ["sign", str(path), "--key", str(keys["release"])])
    assert result.exit_code == 0, result.output
    ok = CliRunner().invoke(app, ["info", str(path), "--trusted-keys", str(keys["release.pub"])])
    assert ok.exit_code == 0 and "(trusted: " in ok.output
    env = {"EDGE_ASC_TRUSTED_KEYS": str(keys["other.pub"])}
    refused = CliRunner().invoke(app, ["info", str(path)], env=env)
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "not among the 1 trusted" in refused.output


def test_keygen_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["keygen", str(tmp_path / "k.pem")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k.pub.pem").is_file()
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    again = CliRunner().invoke(app, ["keygen", str(tmp_path / "k.pem")])
    assert again.exit_code == 2 and "cannot write key" in again.output
