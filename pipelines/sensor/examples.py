"""Synthetic sensor data and fast parameters: what the contract tests fit every detector on."""
from __future__ import annotations

import numpy as np

from pipelines.core.modules import DetectorExample
from pipelines.sensor.schema import SENSOR_COLUMNS


def synthetic(n: int = 240, fail_rate: float = 0.15, seed: int = 0,
              n_features: int = len(SENSOR_COLUMNS)) -> tuple[np.ndarray, np.ndarray]:
    """Rows where fails shift the first five sensors; column 100 constant, column 200 mostly missing."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = (rng.random(n) < fail_rate).astype(int)
    X[y == 1, :5] += 2.5
    X[:, 100] = 7.0  # constant
    X[rng.random(n) < 0.8, 200] = np.nan  # mostly missing
    X[rng.random(n) < 0.05, 10] = np.nan
    return X, y


def detector_examples() -> dict[str, DetectorExample]:
    """One fast example per registered sensor detector."""
    X, y = synthetic()
    return {
        "xgboost": DetectorExample({"n_estimators": 30}, X, y, SENSOR_COLUMNS),
        "extra_trees": DetectorExample({"n_estimators": 20, "max_features": 0.2}, X, y,
                                       SENSOR_COLUMNS),
        "autoencoder": DetectorExample({"epochs": 3, "hidden": (16, 4)}, X, y, SENSOR_COLUMNS,
                                       atol=1e-5),
    }
