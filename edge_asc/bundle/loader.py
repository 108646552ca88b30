"""Loading, writing and signing whole bundles: archive, manifest and signature together.

This is where the parts meet: :func:`load_bundle` opens the archive with its limits, checks
the manifest, the optional signature (and whether its signer is trusted), then inflates every
listed model and compares it with its SHA-256 and size. Only then does the caller get
:class:`Bundle`, whose models stay in the file until they are opened (and are checked
again then): no interpreter is touched here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from edge_asc.bundle.archive import READ_ERRORS, ArchiveReader, unreadable, write_archive
from edge_asc.bundle.common import MANIFEST_NAME, SIGNATURE_NAME, BundleError, names
from edge_asc.bundle.manifest import Manifest, Member
from edge_asc.bundle.model import Bundle, BundleModel, StoredModel, _select
from edge_asc.bundle.signing import (
    MAX_SIGNATURE_BYTES,
    Signature,
    load_private_key,
    load_trusted_keys,
    sign_manifest,
    verify_signature,
)

# ---------------------------------------------------------------------------------------------
# Writing


def write_bundle(
    path: str | os.PathLike[str],
    manifest: Manifest | Mapping[str, Any],
    members: Mapping[str, bytes],
    signing_key: str | os.PathLike[str] | None = None,
) -> None:
    """Validate a manifest and write it with its models as one bundle file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle to create or replace (conventionally ending in ``.easc``). Its directory
        must exist.
    manifest : Manifest or Mapping
        The manifest. ``sha256`` and ``bytes`` of every spectrogram's model (and of its
        ``onnx`` member, if the entry has one) are filled in from ``members`` (the caller's
        mapping is not modified); a missing ``file`` defaults to ``<kind>.tflite``. NumPy
        scalars and arrays are converted to plain JSON numbers and lists.
    members : Mapping of str to bytes
        The model files, keyed by the ``file`` names the manifest lists; exactly those.
    signing_key : str or os.PathLike, optional
        An Ed25519 private key (PEM) to sign the bundle with.

    Raises
    ------
    BundleError
        If the manifest fails any check :func:`load_bundle` makes, ``members`` does not
        match the listed files, the key is unusable, or the file cannot be written. Nothing
        is left behind.
    """
    target = Path(path)
    where = f"cannot write bundle '{target}'"
    if isinstance(manifest, Manifest):
        manifest = manifest.to_dict()
    try:
        data = json.loads(json.dumps(manifest, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: the manifest is not plain JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{where}: the manifest must be a JSON object")

    listed = _fill_member_records(data, members)
    missing = [name for name in listed if name not in members]
    if missing:
        raise BundleError(f"{where}: no bytes given for listed file(s) {names(missing)}")
    parsed = Manifest.from_dict(data, where)
    listed = [m.file for spec in parsed.spectrograms.values() for m in spec.members]
    extra = sorted(set(members) - set(listed))
    if extra:
        raise BundleError(f"{where}: member(s) {names(extra)} are not listed in the manifest")

    manifest_bytes = (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8")
    entries = [(MANIFEST_NAME, manifest_bytes)]
    if signing_key is not None:
        entries.append(
            (SIGNATURE_NAME, sign_manifest(manifest_bytes, load_private_key(signing_key)))
        )
    entries += [(name, bytes(members[name])) for name in listed]
    try:
        write_archive(target, entries)
    except OSError as exc:
        raise BundleError(f"{where}: {exc.strerror}" if exc.strerror else str(exc)) from exc


def _fill_member_records(data: dict[str, Any], members: Mapping[str, bytes]) -> list[str]:
    """Fill ``sha256`` and ``bytes`` of every listed file found in ``members``; list them."""
    listed: list[str] = []
    spectrograms = data.get("spectrograms")
    if not isinstance(spectrograms, dict):
        return listed
    for kind, entry in spectrograms.items():
        if not isinstance(entry, dict):
            continue  # reported by Manifest.from_dict
        entry.setdefault("file", f"{kind}.tflite")
        records = [entry, entry["onnx"]] if isinstance(entry.get("onnx"), dict) else [entry]
        for record in records:
            name = record.get("file")
            if not isinstance(name, str):
                continue
            listed.append(name)
            if name in members:
                record.update(Member.of(name, bytes(members[name])).to_dict())
    return listed


def _json_default(value: Any) -> Any:
    """Let NumPy scalars and arrays through ``json.dumps`` as plain numbers and lists."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def sign_bundle(
    path: str | os.PathLike[str], private_key_path: str | os.PathLike[str]
) -> Signature:
    """Sign an existing bundle in place (replacing any earlier signature), atomically.

    The bundle is fully verified first; its manifest and models are kept byte for byte.

    Returns
    -------
    Signature
        The new signature (the signer's fingerprint).

    Raises
    ------
    BundleError
        If the bundle does not load, the key is unusable or the file cannot be written.
    """
    target = Path(path)
    key = load_private_key(private_key_path)
    bundle = load_bundle(target)
    where = f"bundle '{target}'"
    with ArchiveReader(target, where) as archive:
        manifest_bytes = archive.read(MANIFEST_NAME)
        listed = [name for model in bundle.models.values() for name in _members(model)]
        entries = [(MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, b"")]
        entries += [(name, archive.read(name)) for name in listed]
    entries[1] = (SIGNATURE_NAME, sign_manifest(manifest_bytes, key))
    try:
        write_archive(target, entries)
    except OSError as exc:
        raise BundleError(f"cannot sign {where}: {exc.strerror or exc}") from exc
    return verify_signature(manifest_bytes, entries[1][1], where)


def _members(model: BundleModel) -> list[str]:
    """Archive names of one loaded model's files, TFLite first."""
    return [model.info["file"]] + ([model.info["onnx"]["file"]] if "onnx" in model.info else [])


# ---------------------------------------------------------------------------------------------
# Loading


def load_bundle(
    path: str | os.PathLike[str],
    kinds: Sequence[str] | None = None,
    trusted_keys: Sequence[str | os.PathLike[str]] | None = None,
) -> Bundle:
    """Load and verify a bundle.

    Every member of the archive is checked and every listed model is read in full (within
    the limits of :mod:`edge_asc.bundle.archive`) and compared with its SHA-256 and size,
    whatever ``kinds`` selects. A signature, when present, is always verified. The models
    are not kept in memory: each is read, and checked, again when it is opened
    (:attr:`BundleModel.model_bytes`, :attr:`BundleModel.onnx_bytes`).

    Parameters
    ----------
    path : str or os.PathLike
        The bundle file.
    kinds : sequence of str, optional
        Spectrograms to keep in :attr:`Bundle.models`, in this order; ``None`` keeps all,
        in manifest order.
    trusted_keys : sequence of str or os.PathLike, optional
        Ed25519 public key files (PEM). When given, the bundle must be signed by one of
        them; an unsigned bundle, or one signed by another key, is refused.

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        With a one-line message naming the file, if the file is missing, not a regular
        file, not a complete zip, over a size limit, holds unsafe, unlisted, missing or
        tampered members, has an invalid or unsupported manifest or signature, is not
        signed by a trusted key, or lacks a requested kind.
    """
    bundle_path = Path(path)
    where = f"bundle '{bundle_path}'"
    trusted = load_trusted_keys(trusted_keys) if trusted_keys is not None else None
    try:
        with ArchiveReader(bundle_path, where) as archive:
            if MANIFEST_NAME not in archive.names:
                raise BundleError(f"{where} has no {MANIFEST_NAME} (not an edge-asc bundle?)")
            manifest_bytes = archive.read(MANIFEST_NAME)
            manifest = _decode_manifest(manifest_bytes, where)
            spec = Manifest.from_dict(manifest, where)
            listed = [m.file for s in spec.spectrograms.values() for m in s.members]
            archive.check_members(listed, (MANIFEST_NAME, SIGNATURE_NAME))
            signature = _check_signature(archive, manifest_bytes, trusted, where)
            found = {name: archive.digest(name) for name in listed}
    except READ_ERRORS as exc:
        raise unreadable(where, exc) from exc

    models: dict[str, BundleModel] = {}
    for kind, entry in spec.spectrograms.items():
        for member in entry.members:
            sha256, size = found[member.file]
            if size != member.bytes:
                raise BundleError(
                    f"{where} has been tampered with: {member.file!r} is {size} bytes, "
                    f"the manifest says {member.bytes}"
                )
            if sha256 != member.sha256:
                raise BundleError(
                    f"{where} has been tampered with: the SHA-256 of {member.file!r} does "
                    "not match the manifest"
                )
        models[kind] = BundleModel(
            kind=kind,
            tflite_file=StoredModel(bundle_path, entry.tflite),
            features=entry.features,
            norm=entry.norm,
            info=manifest["spectrograms"][kind],
            onnx_file=StoredModel(bundle_path, entry.onnx) if entry.onnx is not None else None,
            frames=spec.patch.frames,
            labels=spec.labels,
            quantization=spec.quantization,
            reference=entry.reference,
            path=bundle_path,
        )

    return Bundle(
        path=bundle_path,
        manifest=manifest,
        labels=spec.labels,
        models=_select(bundle_path, models, kinds),
        default_fusion=spec.default_fusion,
        quantization=spec.quantization,
        spec=spec,
        signature=signature,
        trusted_key=trusted.get(signature.fingerprint) if trusted and signature else None,
    )


def _check_signature(
    archive: ArchiveReader, manifest_bytes: bytes, trusted: dict[str, Path] | None, where: str
) -> Signature | None:
    """Verify ``signature.json`` if there is one; enforce ``trusted`` keys if given."""
    signature = None
    if SIGNATURE_NAME in archive.names:
        raw = archive.read(SIGNATURE_NAME)
        if len(raw) > MAX_SIGNATURE_BYTES:
            raise BundleError(f"{where}: {SIGNATURE_NAME} is larger than a signature can be")
        signature = verify_signature(manifest_bytes, raw, where)
    if trusted is None:
        return signature
    if signature is None:
        raise BundleError(f"{where} is refused: it is not signed, and only signed bundles run")
    if signature.fingerprint not in trusted:
        raise BundleError(
            f"{where} is refused: signed by key {signature.short_fingerprint}, which is not "
            f"among the {len(trusted)} trusted key(s)"
        )
    return signature


def _decode_manifest(raw: bytes, where: str) -> Any:
    """Parse manifest bytes as strict JSON: UTF-8, no NaN/Infinity, no duplicate keys."""
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys
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
