"""Synthetic part photos and fast parameters: what the contract tests fit each detector on."""
from __future__ import annotations

import numpy as np

from pipelines.core.modules import DetectorExample
from pipelines.inspection.schema import CHANNELS


def synthetic_parts(n: int = 24, size: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` photos (n, size, size, 3) of a round dark part with rings on a white background."""
    rng = np.random.default_rng(seed)
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]
    images = []
    for _ in range(n):
        dy, dx = rng.normal(0, 0.5, size=2)
        r = np.sqrt((x - c - dx) ** 2 + (y - c - dy) ** 2) / (size / 2)
        shade = np.where(r < 0.8, 60 + 40 * np.cos(r * 12), 255.0)
        image = shade[..., None] * np.array([1.0, 0.95, 0.9]) + rng.normal(0, 4, (size, size, 3))
        images.append(np.clip(image, 0, 255))
    return np.stack(images).astype(np.float32)


def detector_examples() -> dict[str, DetectorExample]:
    """Tiny settings for both detectors (ONNX: float32 rounding)."""
    X = synthetic_parts()
    names = list(CHANNELS)
    return {
        "radial": DetectorExample({"work_size": 16, "sigmas": (1.0, 2.0), "rotations": 1,
                                   "top_k": 3, "smooth": 1.0, "components": 3,
                                   "samples_per_bin": 1000}, X, feature_names=names,
                                  atol=1e-4),
        "autoencoder": DetectorExample({"work_size": 16, "channels": (4, 8), "latent": 8,
                                        "epochs": 2, "batch_size": 8, "rotations": 1,
                                        "top_k": 3}, X, feature_names=names, atol=1e-4),
    }
