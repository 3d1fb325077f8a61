"""Sample files generated from training statistics (never copied rows), for users to try the app."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.schema import N_SENSORS, SENSOR_COLUMNS


def sensor_sample(preprocessor: dict, n_rows: int = 200, seed: int = 0,
                  shifted_fraction: float = 0.1) -> pd.DataFrame:
    """A batch-layout CSV frame of synthetic wafers drawn from per-sensor training statistics.

    Each kept sensor is drawn from a normal with its training mean and standard deviation,
    clipped to its training 1st..99th percentile range, and left empty at its training
    missing rate. A ``shifted_fraction`` of wafers get a few sensors pushed towards the edge
    of their range so the sample shows flagged wafers too. Dropped sensors stay empty.
    """
    rng = np.random.default_rng(seed)
    kept = np.asarray(preprocessor["kept"])
    mean, scale = np.asarray(preprocessor["mean"]), np.asarray(preprocessor["scale"])
    low, high = np.asarray(preprocessor["q01"]), np.asarray(preprocessor["q99"])
    values = np.full((n_rows, N_SENSORS), np.nan)
    draws = np.clip(rng.normal(mean, scale, size=(n_rows, len(kept))), low, high)
    shifted = rng.random(n_rows) < shifted_fraction
    for r in np.flatnonzero(shifted):
        cols = rng.choice(len(kept), size=8, replace=False)
        draws[r, cols] = np.where(rng.random(8) < 0.5, low[cols], high[cols]) + \
            rng.normal(0, 3, 8) * scale[cols]
    missing = rng.random((n_rows, len(kept))) < np.asarray(preprocessor["missing_rate"])[kept]
    draws[missing] = np.nan
    values[:, kept] = np.round(draws, 4)
    frame = pd.DataFrame(values, columns=SENSOR_COLUMNS)
    frame.insert(0, "Wafer", [f"Sample-{i + 1}" for i in range(n_rows)])
    return frame


def sensor_template() -> pd.DataFrame:
    """An empty frame with the expected header (wafer id, Sensor-1..590)."""
    return pd.DataFrame(columns=["Wafer", *SENSOR_COLUMNS])
