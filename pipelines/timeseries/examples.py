"""Synthetic engine histories (never data rows) and the contract-test examples.

:func:`synthetic_cmapss` draws run-to-failure engines in the C-MAPSS layout: each sensor
drifts from a base level along an exponential degradation curve towards the end of life,
plus noise; a few sensors are constant, as in FD001. Used by tests, the page's sample file
and the contract examples.
"""
from __future__ import annotations

import numpy as np

from pipelines.core.modules import DetectorExample
from pipelines.timeseries.schema import SENSORS


def synthetic_cmapss(n_engines: int = 6, seed: int = 0, min_cycles: int = 60,
                     max_cycles: int = 140) -> dict[str, np.ndarray]:
    """``{"unit", "cycle", "settings", "sensors"}`` rows of run-to-failure engines."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(10, 1000, len(SENSORS))
    trend = rng.normal(0, 1, len(SENSORS)) * base * 0.002
    constant = np.zeros(len(SENSORS), dtype=bool)
    constant[[0, 4, 9, 15, 17, 18]] = True
    units, cycles, values = [], [], []
    for unit in range(1, n_engines + 1):
        n = int(rng.integers(min_cycles, max_cycles + 1))
        t = np.arange(1, n + 1)
        wear = np.exp((t - n) / (0.25 * n))  # ~0 early, 1 at failure
        noise = rng.normal(0, 1, (n, len(SENSORS))) * base * 0.0004
        rows = base + wear[:, None] * trend * 10 + noise
        rows[:, constant] = np.round(base[constant], 2)
        units.append(np.full(n, unit))
        cycles.append(t)
        values.append(rows)
    n_rows = sum(len(u) for u in units)
    settings = np.column_stack([rng.normal(0, 0.002, n_rows), rng.normal(0, 0.0003, n_rows),
                                np.full(n_rows, 100.0)])
    return {"unit": np.concatenate(units), "cycle": np.concatenate(cycles),
            "settings": settings, "sensors": np.round(np.concatenate(values), 4)}


def synthetic_windows(n: int = 120, steps: int = 30, sensors: int = 4, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Standardised-looking windows and a RUL for each (later windows drift upwards)."""
    rng = np.random.default_rng(seed)
    rul = rng.uniform(0, 150, n)
    drift = np.exp(-rul / 40.0)[:, None, None] * np.linspace(0.5, 1.0, steps)[None, :, None]
    X = rng.normal(0, 0.3, (n, steps, sensors)) + 2 * drift
    return X.astype(np.float32), rul


def detector_examples() -> dict[str, DetectorExample]:
    """Every time-series detector on small synthetic windows with fast parameters."""
    X, rul = synthetic_windows()
    names = [f"sensor_{i}" for i in range(1, X.shape[2] + 1)]
    return {
        "isolation_forest": DetectorExample({"n_estimators": 20, "max_samples": 64}, X,
                                            feature_names=names),
        "xgboost_rul": DetectorExample({"n_estimators": 20, "max_depth": 3}, X, rul,
                                       feature_names=names, atol=1e-4),
        "xgboost_eol": DetectorExample({"n_estimators": 20, "max_depth": 3}, X, rul,
                                       feature_names=names, atol=1e-6),
        "lstm_autoencoder": DetectorExample({"hidden": 8, "epochs": 1, "score_on": "mean_error",
                                             "recent": 5}, X, feature_names=names, atol=1e-5),
        "patchtst": DetectorExample({"d_model": 8, "heads": 2, "layers": 1, "epochs": 1,
                                     "score_on": "mean_error", "history_windows": 3}, X,
                                    feature_names=names, atol=1e-5),
    }


def synthetic_history(scaler: dict, n_machines: int = 4, seed: int = 0, min_cycles: int = 80,
                      max_cycles: int = 200, ids: list[str] | None = None) -> dict:
    """Generated histories on the release's sensor scale (never data rows).

    Each kept sensor starts near its training mean (noise of 0.6 training standard deviations)
    and drifts towards the training engines' end-of-life level along an exponential wear curve;
    dropped sensors hold their training value. Machines run to failure at their last cycle.
    Returns ``{"machine", "cycle", "values" (rows, input sensors), "sensors"}``.
    """
    rng = np.random.default_rng(seed)
    sensors = list(scaler["input_sensors"])
    kept = [sensors.index(s) for s in scaler["sensors"]]
    dropped = [sensors.index(s) for s in scaler["dropped"]]
    mean, std = np.asarray(scaler["mean"]), np.asarray(scaler["std"])
    end = np.asarray(scaler.get("end_of_life_z", np.zeros(len(kept))))
    machines, cycles, values = [], [], []
    for m in range(n_machines):
        n = int(rng.integers(min_cycles, max_cycles + 1))
        t = np.arange(1, n + 1)
        wear = np.exp((t - n) / (0.22 * n))
        z = rng.normal(0, 0.6, (n, len(kept))) + wear[:, None] * end
        rows = np.empty((n, len(sensors)))
        rows[:, kept] = mean + z * std
        rows[:, dropped] = scaler.get("dropped_values", np.zeros(len(dropped)))
        machines += [ids[m] if ids else f"M-{m + 1}"] * n
        cycles.append(t)
        values.append(np.round(rows, 4))
    return {"machine": np.array(machines, dtype=object), "cycle": np.concatenate(cycles),
            "values": np.concatenate(values), "sensors": sensors}


def history_csv(history: dict, machine_column: str = "machine_id",
                time_column: str = "cycle") -> str:
    """A generated history as a CSV with a header."""
    header = ",".join([machine_column, time_column, *history["sensors"]])
    lines = [header] + [",".join([str(m), str(int(c)), *(f"{v:g}" for v in row)])
                        for m, c, row in zip(history["machine"], history["cycle"],
                                             history["values"])]
    return "\n".join(lines) + "\n"
