"""What loading a bundle gives the runtime: :class:`Bundle` and one :class:`BundleModel` each.

Loading has checked every model against its SHA-256, but keeps none of them in memory: a
model's bytes are read again from the archive (and checked again) when the runtime opens it
(:class:`StoredModel`). A bundle carries a TFLite and an ONNX copy of each model and a
process runs one of them; holding both cost the five-model bundle ~100 MB of ONNX it never
ran. The runtime opens the bytes with an interpreter and then calls
:meth:`BundleModel.check_model_io` (cheap) and :func:`edge_asc.bundle.verify_member` (one
inference) so that a model that does not fit its manifest is refused before audio reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_asc.bundle.archive import ArchiveReader
from edge_asc.bundle.common import BundleError
from edge_asc.bundle.manifest import Manifest, Member
from edge_asc.bundle.reference import Reference
from edge_asc.bundle.signing import Signature
from edge_asc.features import FeatureConfig, NormStats


@dataclass(frozen=True)
class StoredModel:
    """A model file inside a bundle, verified at load and read only when it is opened.

    Attributes
    ----------
    path : pathlib.Path
        The bundle file.
    member : Member
        The manifest's record of the file (name, SHA-256, size).
    """

    path: Path
    member: Member

    def read(self) -> bytes:
        """The model's bytes, checked against the manifest again.

        Raises
        ------
        BundleError
            If the bundle can no longer be read, or the file changed on disk since it was
            loaded (the member no longer matches the manifest that was verified).
        """
        where = f"bundle '{self.path}'"
        with ArchiveReader(self.path, where) as archive:
            if self.member.file not in archive.names:
                raise BundleError(
                    f"{where} changed on disk after it was loaded: {self.member.file!r} is "
                    "gone; load it again"
                )
            data = archive.read(self.member.file)
        if Member.of(self.member.file, data) != self.member:
            raise BundleError(
                f"{where} changed on disk after it was loaded: {self.member.file!r} no longer "
                "matches its manifest; load it again"
            )
        return data


@dataclass(frozen=True)
class BundleModel:
    """One spectrogram's model from a bundle, with everything needed to run it.

    Attributes
    ----------
    kind : str
        Spectrogram kind (one of :data:`edge_asc.features.KINDS`).
    tflite_file : StoredModel
        The TFLite flatbuffer in the bundle (:attr:`model_bytes` reads it).
    features : FeatureConfig
        The front-end the model was trained on.
    norm : NormStats
        Per-bin normalisation applied to its spectrogram before the model.
    info : dict
        The manifest entry of this spectrogram (file, sha256, bytes, model, accuracy, ...).
    onnx_file : StoredModel or None
        The same network as an ONNX model (float32; :attr:`onnx_bytes` reads it), ``None``
        when the bundle has none.
    frames : int
        Frames per input patch (the manifest's patch geometry).
    labels : tuple of str
        The bundle's class labels, in output order.
    quantization : str
        The bundle's quantization mode.
    reference : Reference or None
        The outputs stored at export for :func:`edge_asc.bundle.verify_member`.
    path : pathlib.Path or None
        The bundle file (for messages).
    """

    kind: str
    tflite_file: StoredModel = field(repr=False)
    features: FeatureConfig
    norm: NormStats = field(repr=False)
    info: dict[str, Any] = field(repr=False)
    onnx_file: StoredModel | None = field(default=None, repr=False)
    frames: int = 128
    labels: tuple[str, ...] = field(default=(), repr=False)
    quantization: str = "float32"
    reference: Reference | None = field(default=None, repr=False)
    path: Path | None = None

    @property
    def model_bytes(self) -> bytes:
        """The TFLite flatbuffer, read from the bundle and verified (each access reads)."""
        return self.tflite_file.read()

    @property
    def onnx_bytes(self) -> bytes | None:
        """The ONNX model, read from the bundle and verified; ``None`` when there is none."""
        return self.onnx_file.read() if self.onnx_file is not None else None

    @property
    def has_onnx(self) -> bool:
        """Whether the bundle holds an ONNX copy of this model (without reading it)."""
        return self.onnx_file is not None

    def check_model_io(self, input_shape: Sequence[int], n_classes: int) -> None:
        """Check an opened model's input and output sizes against the manifest.

        Cheap (no inference): call it whenever a model is opened from the bundle, before
        any audio reaches it.

        Parameters
        ----------
        input_shape : sequence of int
            The model's input shape without the batch axis, ``(bins, frames[, 1])``.
        n_classes : int
            The model's output size.

        Raises
        ------
        BundleError
            One line, if the model takes other patches than the manifest's
            ``bins x frames``, or has another number of outputs than the bundle has labels.
        """
        where = f"bundle '{self.path}'" if self.path is not None else "bundle"
        expected = (self.features.n_bins, self.frames)
        shape = tuple(int(n) for n in input_shape)
        if shape[:2] != expected or any(n != 1 for n in shape[2:]):
            raise BundleError(
                f"{where}: the {self.kind} model takes patches of shape {shape}, the manifest "
                f"says {expected[0]} bins x {expected[1]} frames"
            )
        if int(n_classes) != len(self.labels):
            raise BundleError(
                f"{where}: the {self.kind} model has {n_classes} outputs, the manifest lists "
                f"{len(self.labels)} labels"
            )


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
    spec : Manifest or None
        The manifest as typed data.
    signature : Signature or None
        The verified signature, ``None`` for an unsigned bundle.
    trusted_key : pathlib.Path or None
        The trusted public key file that matched the signer, when trusted keys were given.
    """

    path: Path
    manifest: dict[str, Any] = field(repr=False)
    labels: tuple[str, ...]
    models: dict[str, BundleModel]
    default_fusion: str
    quantization: str
    spec: Manifest | None = field(default=None, repr=False)
    signature: Signature | None = None
    trusted_key: Path | None = None

    def select(self, kinds: Sequence[str] | None) -> dict[str, BundleModel]:
        """The models of ``kinds`` (all of them for ``None``), in the order given.

        Raises
        ------
        BundleError
            If a kind is not among :attr:`models`, or ``kinds`` is empty.
        """
        return _select(self.path, self.models, kinds)


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
