"""Image and pixel metrics for anomaly maps, aligned and at random rotations about the centre."""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from pipelines.inspection.transform import random_angles, rotate_batch, rotate_mask

# the fixed seed of the random-rotation evaluation (one angle per image)
ROTATION_SEED = 2026


def auroc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC, or None when ``y`` holds one class only."""
    y = np.asarray(y).reshape(-1)
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, np.asarray(scores).reshape(-1)))


def map_metrics(scores: np.ndarray, maps: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                threshold: float | None = None) -> dict:
    """Image AUROC (scores vs labels), pixel AUROC (maps vs masks) and F1 at ``threshold``."""
    out = {"image_auroc": auroc(labels, scores), "pixel_auroc": auroc(masks, maps)}
    if threshold is not None:
        out["f1"] = float(f1_score(labels, np.asarray(scores) >= threshold, zero_division=0))
    return out


def rotated_copies(images: np.ndarray, masks: np.ndarray, seed: int = ROTATION_SEED
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image and mask turned by its own random angle about the centre (fixed seed);
    the images' uncovered corners are filled with their border colour. Returns the angles too."""
    angles = random_angles(len(images), seed)
    turned = rotate_batch(images, angles)
    turned_masks = np.stack([rotate_mask(m, a) for m, a in zip(masks, angles)])
    return turned, turned_masks, angles


def evaluate_maps(explain: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                  images: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                  threshold: float | None, seed: int = ROTATION_SEED) -> dict:
    """Metrics on the images as they are and on randomly rotated copies.

    ``explain`` maps (N, H, W, 3) images to (scores, maps). Returns
    ``{"image_auroc", "pixel_auroc"[, "f1"], "rotated": {same keys, "seed"}}``.
    """
    scores, maps = explain(images)
    aligned = map_metrics(scores, maps, labels, masks, threshold)
    turned, turned_masks, _ = rotated_copies(images, masks, seed)
    r_scores, r_maps = explain(turned)
    rotated = map_metrics(r_scores, r_maps, labels, turned_masks, threshold)
    return aligned | {"rotated": rotated | {"seed": seed}}
