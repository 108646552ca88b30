"""Ed25519 signatures of bundles: who made a bundle, and whether a device should run it.

The signature covers the exact bytes of ``manifest.json``, which hold the SHA-256 and size of
every model, so one signature vouches for the whole bundle. It travels inside the bundle as
``signature.json`` (the signer's public key, its fingerprint and the signature). A device
given trusted public keys runs only bundles signed by one of them; without trusted keys a
signed bundle is still verified (a broken signature means tampering) and an unsigned one
loads. Keys are PEM files: PKCS#8 private keys, SubjectPublicKeyInfo public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_asc.bundle.common import SIGNATURE_NAME, BundleError, short
from edge_asc.files import atomic_output

SIGNATURE_FORMAT = "edge-asc-signature"
"""Value of ``signature.json``'s ``format`` field."""

MAX_SIGNATURE_BYTES = 4096
"""Largest ``signature.json`` read."""


class SigningKeyError(BundleError):
    """A key file that cannot be used; one line naming it."""


@dataclass(frozen=True)
class Signature:
    """A bundle's verified signature: the signer's key fingerprint and public key."""

    fingerprint: str
    public_key: bytes

    @property
    def short_fingerprint(self) -> str:
        """The first 16 hex digits of :attr:`fingerprint` (what ``info`` shows)."""
        return self.fingerprint[:16]


def fingerprint(public_key: bytes) -> str:
    """SHA-256 (hex) of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()


def generate_key_pair(private_path: str | os.PathLike[str]) -> tuple[Path, Path, str]:
    """Write a new Ed25519 key pair: ``private_path`` (mode 0600) and ``<stem>.pub.pem``.

    Returns
    -------
    tuple of (pathlib.Path, pathlib.Path, str)
        The private key file, the public key file and the key's fingerprint.

    Raises
    ------
    SigningKeyError
        If the private key file exists already or cannot be written.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Path(private_path)
    public = private.with_name(private.name.removesuffix(".pem") + ".pub.pem")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise SigningKeyError(f"cannot write key '{private}': {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    raw = _raw_public(key.public_key())
    try:
        with atomic_output(public) as temp:
            temp.write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
    except OSError as exc:
        raise SigningKeyError(f"cannot write key '{public}': {exc}") from None
    return private, public, fingerprint(raw)


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 private key from a PEM file (unencrypted PKCS#8)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(Path(path))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"key '{path}' is not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"key '{path}' is not an Ed25519 key")
    return key


def load_trusted_keys(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Path]:
    """Fingerprints of the Ed25519 public keys in PEM files, mapped to their files.

    Raises
    ------
    SigningKeyError
        If a file cannot be read or is not an Ed25519 public key; or no file is given.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not paths:
        raise SigningKeyError("no trusted public keys given")
    trusted: dict[str, Path] = {}
    for name in paths:
        path = Path(name)
        try:
            key = serialization.load_pem_public_key(_read_key_file(path))
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"key '{path}' is not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"key '{path}' is not an Ed25519 public key")
        trusted[fingerprint(_raw_public(key))] = path
    return trusted


def sign_manifest(manifest_bytes: bytes, private_key: Any) -> bytes:
    """The ``signature.json`` bytes for ``manifest_bytes``, signed with ``private_key``."""
    raw = _raw_public(private_key.public_key())
    record = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "public_key": base64.b64encode(raw).decode("ascii"),
        "fingerprint": fingerprint(raw),
        "signature": base64.b64encode(private_key.sign(manifest_bytes)).decode("ascii"),
    }
    return (json.dumps(record, indent=2) + "\n").encode("utf-8")


def verify_signature(manifest_bytes: bytes, signature_bytes: bytes, where: str) -> Signature:
    """Check ``signature.json`` against the manifest bytes.

    Raises
    ------
    BundleError
        If the record is malformed, or the signature does not match the manifest.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def bad(message: str) -> BundleError:
        return BundleError(f"{where}: invalid {SIGNATURE_NAME}: {message}")

    try:
        record = json.loads(signature_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"not JSON ({exc})") from None
    keys = {"format", "algorithm", "public_key", "fingerprint", "signature"}
    if not isinstance(record, dict) or set(record) != keys:
        raise bad(f"must be an object with exactly {', '.join(sorted(keys))}")
    if record["format"] != SIGNATURE_FORMAT or record["algorithm"] != "ed25519":
        raise bad(f"unsupported format or algorithm {short(record['algorithm'])}")
    try:
        raw = base64.b64decode(str(record["public_key"]), validate=True)
        signature = base64.b64decode(str(record["signature"]), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise bad(f"bad key or signature encoding ({exc})") from None
    if record["fingerprint"] != fingerprint(raw):
        raise bad("the fingerprint does not match the public key")
    try:
        public.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleError(
            f"{where} has been tampered with: its signature does not match the manifest "
            f"(signed by key {record['fingerprint'][:16]})"
        ) from None
    return Signature(fingerprint=record["fingerprint"], public_key=raw)


def _raw_public(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _read_key_file(path: Path) -> bytes:
    try:
        if not path.is_file():
            raise SigningKeyError(f"key '{path}' does not exist or is not a file")
        if path.stat().st_size > 64 * 1024:
            raise SigningKeyError(f"key '{path}' is too large to be a key")
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read key '{path}': {exc.strerror or exc}") from None
