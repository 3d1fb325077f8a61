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
5. :func:`history_slopes`: per sensor, the least-squares slope per cycle over the machine's
   whole history up to each cycle (from its first row in the file), the rate the machine has
   been wearing at; 30 cycles alone give a noisy rate. The XGBoost models take it beside the
   window (``history=``); given only a window, they use the window's own slope instead.
6. :func:`machine_window_mean`: per machine, the mean of per-window values (a network's
   per-sensor errors) over the windows ending in its last ``k`` cycles, cycles before its
   first counting as 0 (the PatchTST forecaster's score is its forecast bias over a history).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pipelines.timeseries.ingest import Series
from pipelines.timeseries.schema import MAX_Z, MIN_DISTINCT, WINDOW

FEATURES = ("recent", "mean", "std", "slope", "min", "max")
RECENT = 5  # cycles averaged for the "recent" level
SCALER_FILE = "scaler.json"  # the fitted scaler in a release (sensors kept, z-score statistics)


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


def off_scale(z: np.ndarray, max_z: float = MAX_Z) -> tuple[int, int] | None:
    """The first (row, column) of standardised readings ``z`` (:func:`standardise`) more than
    ``max_z`` training standard deviations from the training mean, or None (NaN and values
    that overflowed float32 count as off the scale)."""
    bad = ~(np.abs(z) <= max_z)
    if not bad.any():
        return None
    r, c = np.argwhere(bad)[0]
    return int(r), int(c)


def kept_columns(scaler: dict, sensors: list[str]) -> list[int]:
    """Where each kept sensor is among ``sensors`` (a KeyError names a missing one)."""
    index = {s: j for j, s in enumerate(sensors)}
    missing = [s for s in scaler["sensors"] if s not in index]
    if missing:
        raise KeyError(f"missing sensor column(s): {', '.join(missing)}")
    return [index[s] for s in scaler["sensors"]]


def standardise(scaler: dict, values: np.ndarray, sensors: list[str] | None = None
                ) -> np.ndarray:
    """(rows, kept sensors) z-scores, float32; ``sensors`` names the columns of ``values``.
    A z-score beyond float32 becomes inf (:func:`off_scale` reports it)."""
    columns = kept_columns(scaler, sensors or scaler["input_sensors"])
    z = (np.asarray(values, dtype=float)[..., columns] - np.asarray(scaler["mean"])) \
        / np.asarray(scaler["std"])
    with np.errstate(over="ignore"):
        return z.astype(np.float32)


def machine_windows(z: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The window ending at each row of one machine's rows, (rows, window, sensors), and
    whether it was padded with the first row."""
    n = len(z)
    pad = max(0, window - 1)
    padded = np.concatenate([np.repeat(z[:1], pad, axis=0), z]) if pad else z
    out = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (n, s, window)
    return out.transpose(0, 2, 1), np.arange(n) < window - 1


def history_slopes(z: np.ndarray) -> np.ndarray:
    """(rows, sensors) float32: each sensor's least-squares slope per cycle over one machine's
    rows from its first up to each row (0 at the first row). Cumulative sums: O(rows)."""
    z = np.asarray(z, dtype=float)
    n = len(z)
    if n == 0:
        return np.zeros(z.shape, dtype=np.float32)
    t = np.arange(n, dtype=float)
    count = t + 1
    sum_t, sum_tt = np.cumsum(t), np.cumsum(t * t)
    sum_z, sum_tz = np.cumsum(z, axis=0), np.cumsum(z * t[:, None], axis=0)
    var = sum_tt - sum_t ** 2 / count
    cov = sum_tz - sum_t[:, None] * sum_z / count[:, None]
    slope = np.zeros_like(cov)
    ok = var > 1e-9
    slope[ok] = cov[ok] / var[ok, None]
    return slope.astype(np.float32)


@dataclass
class Windows:
    """Every window of a series (one per row): ``X`` (rows, window, sensors) standardised, and
    ``history`` (rows, sensors), the machine's :func:`history_slopes` at each window's end."""

    X: np.ndarray
    rows: np.ndarray  # index into the series' rows of each window's last cycle
    padded: np.ndarray
    history: np.ndarray

    def take(self, keep: np.ndarray) -> "Windows":
        """The windows selected by ``keep`` (a mask or indices)."""
        return Windows(self.X[keep], self.rows[keep], self.padded[keep], self.history[keep])


def iter_series_windows(scaler: dict, series: Series, window: int = WINDOW,
                        max_windows: int | None = None, z: np.ndarray | None = None
                        ) -> Iterator[Windows]:
    """The windows of :func:`series_windows` (all of them, in the same order), in pieces of
    at most ``max_windows`` (``None``: one piece per machine), so that a long history is
    scored without ever holding all its windows (rows x window x sensors) at once. ``z``:
    the series' :func:`standardise` values when the caller already has them."""
    if z is None:
        z = standardise(scaler, series.values, series.sensors)
    pending: list[Windows] = []
    size = 0
    step = max_windows or len(z) or 1
    for _, index in series.groups():
        zm, slopes = z[index], history_slopes(z[index])
        for a in range(0, len(index), step):
            b = min(a + step, len(index))
            lo = max(0, a - (window - 1))  # from lo > 0, every window ending at a.. is full
            X, pad = machine_windows(zm[lo:b], window)
            piece = Windows(X[a - lo:], index[a:b], pad[a - lo:], slopes[a:b])
            if max_windows is None:
                yield piece
                continue
            if size + len(piece.rows) > max_windows and pending:
                yield concat_windows(pending)
                pending, size = [], 0
            pending.append(piece)
            size += len(piece.rows)
    if pending:
        yield concat_windows(pending)


def concat_windows(parts: list[Windows]) -> Windows:
    """One :class:`Windows` of ``parts`` in order (copies the window arrays)."""
    return Windows(np.concatenate([p.X for p in parts]), np.concatenate([p.rows for p in parts]),
                   np.concatenate([p.padded for p in parts]),
                   np.concatenate([p.history for p in parts]))


def series_windows(scaler: dict, series: Series, window: int = WINDOW,
                   full_only: bool = False) -> Windows:
    """Standardise and cut the window ending at each row, machine by machine.

    ``full_only`` keeps only windows with ``window`` real cycles (training).
    """
    parts = list(iter_series_windows(scaler, series, window))
    if not parts:
        n_sensors = len(scaler["sensors"])
        return Windows(np.zeros((0, window, n_sensors), dtype=np.float32),
                       np.zeros(0, dtype=int), np.zeros(0, dtype=bool),
                       np.zeros((0, n_sensors), dtype=np.float32))
    every = concat_windows(parts)
    return every.take(~every.padded) if full_only else every


def machine_window_mean(values: np.ndarray, machines: np.ndarray, k: int) -> np.ndarray:
    """(windows, columns) float64: for windows listed machine by machine (each machine's
    windows one after another, one per cycle in cycle order from its first, as
    :func:`series_windows` lists them), the sum of ``values`` over the window and the ``k - 1``
    windows before it of the same machine, divided by ``k``. Cycles before the machine's first
    count as 0, so a short history is shrunk towards 0 instead of averaged over fewer windows.
    Causal: a window's value depends on its machine's earlier windows only."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0 or k <= 1:
        return values / max(k, 1)
    machines = np.asarray(machines)
    new = np.ones(n, dtype=bool)
    new[1:] = machines[1:] != machines[:-1]
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))  # each window's machine start
    total = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    lo = np.maximum(start, np.arange(n) - k + 1)
    return (total[np.arange(n) + 1] - total[lo]) / k


def window_slopes(X: np.ndarray) -> np.ndarray:
    """(windows, sensors) float32: each window's least-squares slope per cycle (what stands in
    for the history slope when only windows are given)."""
    X = np.asarray(X, dtype=np.float32)
    steps = X.shape[1]
    t = np.arange(steps, dtype=np.float32) - (steps - 1) / 2
    denom = float((t ** 2).sum()) or 1.0
    return (np.einsum("nws,w->ns", X, t) / denom).astype(np.float32)


def window_features(X: np.ndarray) -> np.ndarray:
    """(windows, 6 * sensors) float32: recent level, mean, std, slope, min, max per sensor."""
    X = np.asarray(X, dtype=np.float32)
    return np.concatenate([X[:, -RECENT:].mean(axis=1), X.mean(axis=1), X.std(axis=1),
                           window_slopes(X), X.min(axis=1), X.max(axis=1)],
                          axis=1).astype(np.float32)


def feature_names(sensors: list[str]) -> list[str]:
    """Names of :func:`window_features`' columns, ``sensor_2:last`` and so on."""
    return [f"{s}:{f}" for f in FEATURES for s in sensors]
