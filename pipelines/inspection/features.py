"""A few numbers per photo for the review queue's diversity step: photos whose numbers are close
are near-copies of each other (the same part photographed twice, a run of similar photos).

An 8 x 8 thumbnail of the luminance (block means of the model-size photo) and the mean and
spread of each colour channel: ``8 * 8 + 6`` numbers, numpy only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

THUMB = 8
N_FEATURES = THUMB * THUMB + 6


def photo_features(photos: Sequence[np.ndarray]) -> np.ndarray:
    """(photos, N_FEATURES) float32 from (H, W, 3) uint8 photos (H and W multiples of 8 or
    not: the blocks cover the photo, the last ones a little larger)."""
    out = np.zeros((len(photos), N_FEATURES), np.float32)
    for i, photo in enumerate(photos):
        rgb = np.asarray(photo, dtype=np.float32)
        luminance = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        h, w = luminance.shape
        rows = np.linspace(0, h, THUMB + 1).astype(int)
        cols = np.linspace(0, w, THUMB + 1).astype(int)
        thumb = np.add.reduceat(np.add.reduceat(luminance, rows[:-1], axis=0), cols[:-1], axis=1)
        thumb /= np.outer(np.diff(rows), np.diff(cols))
        out[i, :THUMB * THUMB] = thumb.ravel() / 255.0
        out[i, THUMB * THUMB:] = np.concatenate([rgb.mean(axis=(0, 1)), rgb.std(axis=(0, 1))]
                                                ) / 255.0
    return out
