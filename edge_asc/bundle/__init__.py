"""The self-describing model bundle: one file holding everything the runtime needs.

A bundle (``*.easc``) is a zip archive with one TFLite model per spectrogram (and, from
schema version 2, optionally the same model as ONNX for GPU runtimes), a ``manifest.json``
that says what each model expects (the exact :class:`FeatureConfig` and :class:`NormStats`
used in training, the class labels in output order, the quantization and the default
late-fusion rule) and, optionally, a ``signature.json`` (Ed25519 over the manifest).
Export writes it with :func:`write_bundle`; the runtime and ``edge-asc info`` read it with
:func:`load_bundle`.

Why one verified file: a model run with the wrong front-end, the wrong normalisation or the
wrong label order still produces confident-looking labels, so the device must never guess
any of these, and a bundle may be hostile. Loading therefore checks everything (file type,
zip integrity and sizes, member names, hashes and sizes of every model, every manifest field,
the signature) and refuses a bad bundle with one line that names the file. Nothing here uses
pickle, and nothing here imports TensorFlow: the loader hands back verified models whose
bytes are read (and checked again) only when they are opened, so that a process holds only the
copy it runs; the runtime, once it has opened one, calls :meth:`BundleModel.check_model_io`
and :func:`verify_member`.

Modules: :mod:`~edge_asc.bundle.manifest` (the schema), :mod:`~edge_asc.bundle.archive`
(the zip and its limits), :mod:`~edge_asc.bundle.signing` (keys and signatures),
:mod:`~edge_asc.bundle.reference` (TFLite/ONNX agreement), :mod:`~edge_asc.bundle.model`
(what loading returns), :mod:`~edge_asc.bundle.loader` (load, write, sign) and
:mod:`~edge_asc.bundle.info` (``edge-asc info``).
"""

from edge_asc.bundle.archive import (
    MAX_BUNDLE_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
)
from edge_asc.bundle.common import BUNDLE_SUFFIX, MANIFEST_NAME, SIGNATURE_NAME, BundleError
from edge_asc.bundle.info import format_info
from edge_asc.bundle.loader import load_bundle, sign_bundle, write_bundle
from edge_asc.bundle.manifest import (
    BUNDLE_FORMAT,
    FUSIONS,
    QUANTIZATIONS,
    READABLE_SCHEMAS,
    SCHEMA_VERSION,
    Manifest,
    Member,
    ModelSpec,
    OpenSet,
    Patch,
    Spectrogram,
)
from edge_asc.bundle.model import Bundle, BundleModel, StoredModel
from edge_asc.bundle.reference import (
    AGREEMENT_TOLERANCE,
    Reference,
    reference_outputs,
    reference_patch,
    verify_member,
)
from edge_asc.bundle.signing import (
    Signature,
    SigningKeyError,
    generate_key_pair,
    load_trusted_keys,
)

__all__ = [
    "AGREEMENT_TOLERANCE",
    "BUNDLE_FORMAT",
    "BUNDLE_SUFFIX",
    "FUSIONS",
    "MANIFEST_NAME",
    "MAX_BUNDLE_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_TOTAL_BYTES",
    "QUANTIZATIONS",
    "READABLE_SCHEMAS",
    "SCHEMA_VERSION",
    "SIGNATURE_NAME",
    "Bundle",
    "BundleError",
    "BundleModel",
    "Manifest",
    "Member",
    "ModelSpec",
    "OpenSet",
    "Patch",
    "Reference",
    "Signature",
    "SigningKeyError",
    "Spectrogram",
    "StoredModel",
    "format_info",
    "generate_key_pair",
    "load_bundle",
    "load_trusted_keys",
    "reference_outputs",
    "reference_patch",
    "sign_bundle",
    "verify_member",
    "write_bundle",
]
