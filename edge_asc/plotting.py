"""Drawing spectrograms to PNG, for eyes rather than models.

Matplotlib with the non-interactive Agg backend, so it works on a headless device. Imported
only by the commands that draw, which keeps matplotlib off the inference path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from edge_asc.features import FeatureConfig
from edge_asc.files import atomic_output

_TITLES = {
    "stft": "STFT (128 linear bands)",
    "logmel": "log-Mel (128 filters)",
    "mfcc": "MFCC (64 DCT + 64 deltas)",
    "cqt": "CQT (128 constant-Q bins)",
    "gam": "Gammatone (128 ERB channels)",
}

_UNITS = {"mfcc": "coefficient"}


def plot_spectrograms(
    path: str | os.PathLike[str],
    spectrograms: Mapping[str, np.ndarray],
    config: FeatureConfig,
    title: str = "",
) -> None:
    """Write one PNG with a panel per spectrogram: time axis in seconds, a colour bar each.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG to write; replaced atomically, nothing is left behind on failure.
    spectrograms : mapping of str to numpy.ndarray
        Kind name to ``(n_bins, T)`` array, drawn top to bottom in mapping order.
    config : FeatureConfig
        Settings the spectrograms were computed with (for the time axis).
    title : str, optional
        Figure title, e.g. the audio file's name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(spectrograms)
    fig, axes = plt.subplots(
        len(kinds),
        1,
        figsize=(10, 2.6 * len(kinds) + 0.6),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    seconds_per_frame = config.hop_length / config.sample_rate
    try:
        for ax, kind in zip(axes[:, 0], kinds, strict=True):
            spec = np.asarray(spectrograms[kind])
            n_bins, n_frames = spec.shape
            # MFCC's c0 dwarfs the rest; clip its colours to the bulk of the values.
            low, high = (
                np.percentile(spec, [1, 99]) if kind == "mfcc" and spec.size else (None, None)
            )
            image = ax.imshow(
                spec,
                origin="lower",
                aspect="auto",
                interpolation="nearest",
                cmap="magma" if kind != "mfcc" else "coolwarm",
                extent=(0.0, n_frames * seconds_per_frame, 0, n_bins),
                vmin=low,
                vmax=high,
            )
            ax.set_title(_TITLES.get(kind, kind), fontsize=10)
            ax.set_ylabel(_UNITS.get(kind, "bin"))
            fig.colorbar(image, ax=ax, label="dB" if kind != "mfcc" else "value", pad=0.01)
        longest = max(np.shape(s)[1] for s in spectrograms.values()) * seconds_per_frame
        axes[-1, 0].set_xlim(0.0, longest)
        axes[-1, 0].set_xlabel("time (s)")
        if title:
            fig.suptitle(title)
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
