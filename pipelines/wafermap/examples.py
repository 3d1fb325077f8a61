"""Synthetic wafer maps and fast parameters: what the contract tests fit the CNN on."""
from __future__ import annotations

import numpy as np

from pipelines.core.modules import DetectorExample
from pipelines.wafermap.schema import FAIL, OFF, PASS

# the synthetic patterns: a few of the nine classes are enough for the contract
PATTERNS = ("none", "Center", "Edge-Ring", "Scratch")


def wafer_disc(size: int) -> np.ndarray:
    """A round wafer: pass dies inside the circle, off-wafer outside."""
    r = (np.arange(size) - (size - 1) / 2) / (size / 2)
    inside = r[:, None] ** 2 + r[None, :] ** 2 <= 1.0
    return np.where(inside, PASS, OFF).astype(np.uint8)


def synthetic_map(pattern: str, size: int = 32, rng: np.random.Generator | None = None
                  ) -> np.ndarray:
    """One ``size`` x ``size`` map with a few random fail dies plus the pattern's shape."""
    rng = rng or np.random.default_rng(0)
    grid = wafer_disc(size)
    on = grid == PASS
    grid[on & (rng.random(grid.shape) < 0.03)] = FAIL
    r = (np.arange(size) - (size - 1) / 2) / (size / 2)
    radius = np.sqrt(r[:, None] ** 2 + r[None, :] ** 2)
    if pattern == "Center":
        grid[on & (radius < 0.3 + 0.1 * rng.random())] = FAIL
    elif pattern == "Edge-Ring":
        grid[on & (radius > 0.85 - 0.05 * rng.random())] = FAIL
    elif pattern == "Scratch":
        row = int(rng.integers(size // 4, 3 * size // 4))
        cols = np.arange(size // 5, 4 * size // 5)
        grid[row, cols] = np.where(on[row, cols], FAIL, grid[row, cols])
    return grid


def synthetic(n: int = 64, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` maps (uint8, n x size x size) cycling through :data:`PATTERNS`, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.array([PATTERNS[i % len(PATTERNS)] for i in range(n)])
    return np.stack([synthetic_map(p, size, rng) for p in labels]), labels


def detector_examples() -> dict[str, DetectorExample]:
    """One fast example for the CNN: tiny network, two short epochs (ONNX: float32 rounding)."""
    X, y = synthetic()
    return {"cnn": DetectorExample({"channels": (4, 8, 8, 8), "epochs": 2, "epoch_size": 64,
                                    "batch_size": 32, "tta": 1, "occlusion_stride": 8,
                                    "blend_features": True, "trees": 5},
                                   X, y, atol=1e-5)}
