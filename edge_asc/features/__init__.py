"""The spectrogram front-end shared by training and the on-device runtime.

One :class:`FeatureConfig` fixes all five spectrograms of the paper; :class:`FeatureStream`
computes them incrementally and :func:`compute` in one go, by the same code.
"""

from edge_asc.features.config import KINDS, STFT_KINDS, FeatureConfig, FeatureConfigError
from edge_asc.features.patches import NormStats, PatchCutter, cut_patches
from edge_asc.features.spectrograms import (
    FeatureStream,
    FrameTiming,
    compute,
    compute_many,
    parse_kinds,
    timing,
)

__all__ = [
    "KINDS",
    "STFT_KINDS",
    "FeatureConfig",
    "FeatureConfigError",
    "FeatureStream",
    "FrameTiming",
    "NormStats",
    "PatchCutter",
    "compute",
    "compute_many",
    "cut_patches",
    "parse_kinds",
    "timing",
]
