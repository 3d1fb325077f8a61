"""A tiny inspection release trained in seconds on generated part photos, shared by the tests.

The photos are written as PNG files: a plain folder of good parts to train on, and a small
category in the MVTec AD layout (test/good, test/spot with masks) to evaluate on.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from pipelines.inspection.examples import synthetic_parts
from pipelines.inspection.synthetic import spot
from pipelines.inspection.train import train_inspection

SIZE = 256
FAST = {"radial": {"work_size": 32, "sigmas": [1.0, 2.0], "rotations": 1, "top_k": 3,
                   "components": 4, "samples_per_bin": 2000},
        "autoencoder": {"work_size": 32, "channels": [4, 8], "latent": 8, "epochs": 2,
                        "batch_size": 8, "rotations": 1, "top_k": 3}}


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_category(root: Path, n_train: int = 20, n_test: int = 4, seed: int = 0) -> Path:
    """A category in the MVTec AD layout with generated parts and blob defects (with masks)."""
    parts = synthetic_parts(n_train + 2 * n_test, SIZE, seed).astype(np.uint8)
    for sub in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        (root / "train/good" / f"{i:03d}.png").write_bytes(png(parts[i]))
    rng = np.random.default_rng(seed + 1)
    for j in range(n_test):
        (root / "test/good" / f"{j:03d}.png").write_bytes(png(parts[n_train + j]))
        defective, mask = spot(parts[n_train + n_test + j], rng)
        (root / "test/spot" / f"{j:03d}.png").write_bytes(png(defective))
        (root / "ground_truth/spot" / f"{j:03d}_mask.png").write_bytes(png(mask * 255))
    return root


@pytest.fixture(scope="session")
def tiny_category(tmp_path_factory) -> Path:
    return write_category(tmp_path_factory.mktemp("inspection-data") / "parts")


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, tiny_category):
    """(artifacts folder, evaluation) of a release trained on ``tiny_category``'s good parts."""
    artifacts = tmp_path_factory.mktemp("inspection-artifacts")
    evaluation = train_inspection(tiny_category / "train" / "good", artifacts, params=FAST,
                                  val_rotations=1, n_jobs=1)
    return artifacts, evaluation
