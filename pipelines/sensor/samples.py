"""Sample files generated from training statistics (never copied rows), for users to try the app.

``fit_sample_model`` summarises passing wafers as a low-rank Gaussian (the leading principal
components of the standardised sensors plus per-sensor residual noise), so generated wafers
keep the main correlations between sensors, and records how failing wafers differ on average.
``sensor_sample`` draws wafers from it; a share of them are pushed along the fail direction.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.sensor.schema import N_SENSORS, SENSOR_COLUMNS
from pipelines.sensor.transform import fit_preprocessor, impute, standardise

CLIP = 10.0
SAMPLE_MODEL_FILE = "sample_model.json"  # a module-level file of the sensor release


def fit_sample_model(X: np.ndarray, y: np.ndarray, n_components: int = 20) -> dict:
    """Statistics to generate realistic synthetic wafers: JSON-ready, no rows kept."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    passing = X[y == 0]
    pre = fit_preprocessor(passing, SENSOR_COLUMNS)
    z = np.clip(standardise(pre, impute(pre, passing)), -CLIP, CLIP).astype(float)
    centre = z.mean(axis=0)
    centred = z - centre
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, len(singular))
    component_std = singular[:k] / np.sqrt(max(len(z) - 1, 1))
    residual_std = (centred - centred @ components[:k].T @ components[:k]).std(axis=0)
    fail_shift = np.zeros(len(pre["kept"]))
    if (y == 1).any():
        z_fail = np.clip(standardise(pre, impute(pre, X[y == 1])), -CLIP, CLIP)
        fail_shift = z_fail.mean(axis=0) - centre
    constant = {SENSOR_COLUMNS[j]: float(np.nanmedian(passing[:, j]))
                for j in range(N_SENSORS)
                if SENSOR_COLUMNS[j] in pre["dropped_constant"] and not np.isnan(passing[:, j]).all()}
    return {"kept": pre["kept"], "mean": pre["mean"], "scale": pre["scale"],
            "low": pre["q01"], "high": pre["q99"], "missing_rate": pre["missing_rate"],
            "components": components[:k].round(6).tolist(),
            "component_std": component_std.tolist(), "residual_std": residual_std.tolist(),
            "fail_shift": fail_shift.tolist(), "constant": constant,
            "n_passing": int(len(passing)), "n_failing": int((y == 1).sum())}


def sensor_sample(model: dict, n_rows: int = 200, seed: int = 0,
                  shifted_fraction: float = 0.1, shift_strength: float = 3.0) -> pd.DataFrame:
    """A batch-layout frame of synthetic wafers drawn from :func:`fit_sample_model` statistics.

    Normal wafers come from the low-rank Gaussian; ``shifted_fraction`` of them are moved
    ``shift_strength`` times along the average fail-minus-pass difference, so the sample shows
    flagged wafers too. Values are kept within the training 1st..99th percentile range widened
    by half its width; cells go missing at each sensor's training missing rate.
    """
    rng = np.random.default_rng(seed)
    kept = np.asarray(model["kept"])
    components = np.asarray(model["components"])
    z = (rng.normal(size=(n_rows, len(components))) * np.asarray(model["component_std"])) \
        @ components + rng.normal(size=(n_rows, len(kept))) * np.asarray(model["residual_std"])
    shifted = rng.random(n_rows) < shifted_fraction
    z[shifted] += shift_strength * np.asarray(model["fail_shift"])
    values = np.asarray(model["mean"]) + z * np.asarray(model["scale"])
    low, high = np.asarray(model["low"]), np.asarray(model["high"])
    margin = 0.5 * (high - low)
    values = np.clip(values, low - margin, high + margin)
    values[rng.random(values.shape) < np.asarray(model["missing_rate"])[kept]] = np.nan
    full = np.full((n_rows, N_SENSORS), np.nan)
    full[:, kept] = values
    for name, value in model["constant"].items():
        full[:, SENSOR_COLUMNS.index(name)] = value
    frame = pd.DataFrame(full.round(5), columns=SENSOR_COLUMNS)
    frame.insert(0, "Wafer", [f"Sample-{i + 1}" for i in range(n_rows)])
    return frame


def sensor_template() -> pd.DataFrame:
    """An empty frame with the expected header (wafer id, Sensor-1..590)."""
    return pd.DataFrame(columns=["Wafer", *SENSOR_COLUMNS])
