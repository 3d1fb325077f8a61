"""The transformation, one code path for training and serving.

1. :func:`fit_scaler` (training engines only): drop sensors that don't vary (fewer than
   ``MIN_DISTINCT`` distinct values: constant, or one quantisation step flipping), and keep
   each remaining sensor's mean and standard deviation.
2. :func:`standardise`: the kept sensors as z-scores with those statistics.
3. :func:`windows`: the window of ``window`` cycles ending at each cycle of a machine. A
   cycle with less history than that (the start of every machine, and whole test engines
   shorter than the window) gets a window padded at the front with the machine's first row,
   and is marked ``padded``. Training uses unpadded windows only.
4. :func:`window_features`: per sensor over the window: the mean of its last ``RECENT``
   cycles (the current level, less noisy than the last value alone), mean, standard
   deviation, least-squares slope per cycle, minimum and maximum (the tree models' input).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.timeseries.ingest import Series
from pipelines.timeseries.schema import MIN_DISTINCT, WINDOW

FEATURES = ("recent", "mean", "std", "slope", "min", "max")
RECENT = 5  # cycles averaged for the "recent" level


def fit_scaler(values: np.ndarray, sensors: list[str], min_distinct: int = MIN_DISTINCT
               ) -> dict:
    """Kept sensors and their mean/std from training rows (JSON-ready, stored in the release)."""
    values = np.asarray(values, dtype=float)
    distinct = np.array([len(np.unique(values[:, j])) for j in range(values.shape[1])])
    std = values.std(axis=0)
    keep = (distinct >= min_distinct) & (std > 0)
    return {"input_sensors": list(sensors),
            "sensors": [s for s, k in zip(sensors, keep) if k],
            "dropped": [s for s, k in zip(sensors, keep) if not k],
            "mean": values[:, keep].mean(axis=0).tolist(),
            "std": std[keep].tolist(),
            "rule": f"drop a sensor with fewer than {min_distinct} distinct training values; "
                    f"z-score the rest with training-engine mean and standard deviation"}


def kept_columns(scaler: dict, sensors: list[str]) -> list[int]:
    """Where each kept sensor is among ``sensors`` (a KeyError names a missing one)."""
    index = {s: j for j, s in enumerate(sensors)}
    missing = [s for s in scaler["sensors"] if s not in index]
    if missing:
        raise KeyError(f"missing sensor column(s): {', '.join(missing)}")
    return [index[s] for s in scaler["sensors"]]


def standardise(scaler: dict, values: np.ndarray, sensors: list[str] | None = None
                ) -> np.ndarray:
    """(rows, kept sensors) z-scores, float32; ``sensors`` names the columns of ``values``."""
    columns = kept_columns(scaler, sensors or scaler["input_sensors"])
    z = (np.asarray(values, dtype=float)[..., columns] - np.asarray(scaler["mean"])) \
        / np.asarray(scaler["std"])
    return z.astype(np.float32)


def machine_windows(z: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The window ending at each row of one machine's rows, (rows, window, sensors), and
    whether it was padded with the first row."""
    n = len(z)
    pad = max(0, window - 1)
    padded = np.concatenate([np.repeat(z[:1], pad, axis=0), z]) if pad else z
    out = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (n, s, window)
    return out.transpose(0, 2, 1), np.arange(n) < window - 1


@dataclass
class Windows:
    """Every window of a series (one per row): ``X`` (rows, window, sensors) standardised."""

    X: np.ndarray
    rows: np.ndarray  # index into the series' rows of each window's last cycle
    padded: np.ndarray


def series_windows(scaler: dict, series: Series, window: int = WINDOW,
                   full_only: bool = False) -> Windows:
    """Standardise and cut the window ending at each row, machine by machine.

    ``full_only`` keeps only windows with ``window`` real cycles (training).
    """
    z = standardise(scaler, series.values, series.sensors)
    parts, rows, padded = [], [], []
    for _, index in series.groups():
        X, pad = machine_windows(z[index], window)
        if full_only:
            X, index, pad = X[~pad], index[~pad], pad[~pad]
        parts.append(X)
        rows.append(index)
        padded.append(pad)
    n_sensors = z.shape[1]
    return Windows(np.concatenate(parts) if parts else np.zeros((0, window, n_sensors)),
                   np.concatenate(rows) if rows else np.zeros(0, dtype=int),
                   np.concatenate(padded) if padded else np.zeros(0, dtype=bool))


def window_features(X: np.ndarray) -> np.ndarray:
    """(windows, 6 * sensors) float32: recent level, mean, std, slope, min, max per sensor."""
    X = np.asarray(X, dtype=np.float32)
    steps = X.shape[1]
    t = np.arange(steps, dtype=np.float32) - (steps - 1) / 2
    denom = float((t ** 2).sum()) or 1.0
    slope = np.einsum("nws,w->ns", X, t) / denom
    return np.concatenate([X[:, -RECENT:].mean(axis=1), X.mean(axis=1), X.std(axis=1), slope, X.min(axis=1),
                           X.max(axis=1)], axis=1).astype(np.float32)


def feature_names(sensors: list[str]) -> list[str]:
    """Names of :func:`window_features`' columns, ``sensor_2:last`` and so on."""
    return [f"{s}:{f}" for f in FEATURES for s in sensors]
