"""Augmentation of dB-scaled training patches that fits the field, drawn per batch row.

Three transforms, each cheap enough for numpy on the input pipeline and each applied to the
cached, normalised patches (no audio is decoded again):

* **gain**: a random level change of +-``gain_db``. The spectrograms end in
  ``10 log10(power)``, so a gain is a shift of every dB value, i.e. ``g / std`` per bin
  in the normalised domain.
* **background mixing**: a patch of the background (non-target) class is added in the
  power domain at a random signal-to-background ratio, the label kept. Power adds per bin
  for a sum of independent sources (the expected value; the cross terms average out), which
  is what mixing two recordings does to a filterbank output.
* **SpecAugment masks**: a few random frequency bands and time spans set to the bin mean
  (0 after normalisation), as in Park et al., 2019.

A random time shift comes from cutting the training clips into overlapping patches
(``TrainConfig.patch_hop``): every shift by a multiple of the hop is seen.

Every draw is made in :func:`draw` from the epoch's generator, per batch position, so a
multi-worker job's replicas compute exactly the rows one process would (see
``training.BatchPlan``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GAIN_DB = 6.0
"""Largest level change either way."""

SNR_DB = (10.0, 30.0)
"""Range of the target-to-background power ratio when a background is mixed in. The target
stays the dominant sound: mixed in at equal power (0 dB), the same speech and music the class
``unknown`` learns from taught the models that they are evidence for the ten classes (measured:
6 % of held-out non-target clips said ``unknown`` with 0-20 dB on half of the rows)."""

MIX_SHARE = 0.25
"""Share of target rows that get a background mixed in (when the run has a background)."""

MASKS = 2
"""Frequency masks and time masks per patch (each)."""

MASK_WIDTH = 12
"""Widest mask, in bins or frames."""


@dataclass(frozen=True)
class Augmentation:
    """The draws for one global batch; row ``i`` of each array belongs to batch position ``i``.

    Attributes
    ----------
    gain_db : numpy.ndarray
        ``(b,)`` level change in dB.
    background : numpy.ndarray
        ``(b,)`` patch index of the background mixed into the row; -1 for none.
    snr_db : numpy.ndarray
        ``(b,)`` target-to-background power ratio in dB (used where ``background >= 0``).
    freq_masks, time_masks : numpy.ndarray
        ``(b, MASKS, 2)`` start and width of each mask.
    """

    gain_db: np.ndarray
    background: np.ndarray
    snr_db: np.ndarray
    freq_masks: np.ndarray
    time_masks: np.ndarray


def draw(
    rng: np.random.Generator,
    labels: np.ndarray,
    background_pool: np.ndarray,
    background_class: int | None,
    shape: tuple[int, int],
) -> Augmentation:
    """Draw one batch's augmentation.

    Parameters
    ----------
    rng : numpy.random.Generator
        The epoch's generator (after the batch's mixup draws).
    labels : numpy.ndarray
        ``(b,)`` class of each row.
    background_pool : numpy.ndarray
        Patch indices of the background class (empty: no mixing).
    background_class : int or None
        Index of the background class; its own rows get no background mixed in.
    shape : tuple of int
        ``(bins, frames)`` of a patch.

    Returns
    -------
    Augmentation
    """
    b = labels.size
    bins, frames = shape
    gain = rng.uniform(-GAIN_DB, GAIN_DB, size=b)
    mix = rng.random(b) < MIX_SHARE
    picks = rng.integers(0, max(background_pool.size, 1), size=b)
    snr = rng.uniform(*SNR_DB, size=b)
    if background_pool.size == 0:
        background = np.full(b, -1)
    else:
        background = np.where(mix & (labels != background_class), background_pool[picks], -1)

    def masks(size: int) -> np.ndarray:
        width = np.minimum(rng.integers(0, MASK_WIDTH + 1, size=(b, MASKS)), size)
        start = rng.integers(0, size, size=(b, MASKS))
        return np.stack([np.minimum(start, size - width), width], axis=-1)

    return Augmentation(gain, background, snr, masks(bins), masks(frames))


def apply(
    x: np.ndarray,
    positions: np.ndarray,
    augmentation: Augmentation,
    patches_x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
) -> np.ndarray:
    """Augmented copies of normalised patches ``x`` at batch ``positions``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, bins, frames)`` normalised patches (not modified).
    positions : numpy.ndarray
        ``(n,)`` batch position of each patch (selects its draws).
    augmentation : Augmentation
        The batch's draws.
    patches_x : numpy.ndarray
        All normalised patches (where the backgrounds come from).
    mean, std : numpy.ndarray
        ``(bins,)`` the normalisation, to work in dB.

    Returns
    -------
    numpy.ndarray
        ``(n, bins, frames)`` float32.
    """
    out = x.astype(np.float32, copy=True)
    mean_c, std_c = mean[:, None], std[:, None]
    for row, pos in enumerate(positions):
        bg = augmentation.background[pos]
        if bg >= 0:
            own_db = out[row] * std_c + mean_c
            bg_db = patches_x[bg] * std_c + mean_c
            own_power = np.power(10.0, own_db / 10.0)
            bg_power = np.power(10.0, bg_db / 10.0)
            scale = own_power.mean() / max(bg_power.mean(), 1e-30)
            scale *= 10.0 ** (-augmentation.snr_db[pos] / 10.0)
            mixed_db = 10.0 * np.log10(own_power + scale * bg_power)
            out[row] = (mixed_db - mean_c) / std_c
        out[row] += (augmentation.gain_db[pos] / std).astype(np.float32)[:, None]
        for start, width in augmentation.freq_masks[pos]:
            out[row, start : start + width, :] = 0.0
        for start, width in augmentation.time_masks[pos]:
            out[row, :, start : start + width] = 0.0
    return out
