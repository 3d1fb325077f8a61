"""What the release remembers about its training rows: row hashes and a per-sensor profile.

The row hashes are :mod:`pipelines.core.rowhash`'s (shared with the time-series module).
:func:`training_profile` and :func:`drift` compare a batch with the training data's
1st-99th percentile range per sensor. All work chunk-wise over rows, so memory stays a small
multiple of one chunk whatever the batch size.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np


logger = logging.getLogger(__name__)

CHUNK_ROWS = 2048  # rows per pass of drift()
TOP_DRIFTED = 5
MEDIAN_ROWS = 1000  # rows per chunk a drifted sensor's median is taken from


def training_profile(X: np.ndarray, feature_names: Sequence[str]) -> dict:
    """Per sensor: 1st and 99th percentile, median and missing rate of the training values.

    Percentiles and medians are over observed values; a sensor never observed has None.
    """
    X = np.asarray(X, dtype=np.float64)
    observed = ~np.isnan(X).all(axis=0)
    p01, p50, p99 = (np.full(X.shape[1], np.nan) for _ in range(3))
    p01[observed], p50[observed], p99[observed] = np.nanquantile(
        X[:, observed], [0.01, 0.5, 0.99], axis=0)
    return {"features": list(feature_names), "p01": _json_floats(p01), "p99": _json_floats(p99),
            "median": _json_floats(p50),
            "missing_rate": _json_floats(np.isnan(X).mean(axis=0))}


class DriftCounter:
    """How unlike the training data a batch looks, counted chunk by chunk (see :func:`drift`).

    Shares are exact over all chunks. Each drifted sensor's batch median is exact up to
    ``MEDIAN_ROWS`` rows; beyond that it is the median of evenly spaced rows of each chunk,
    and the row-weighted median of the chunks' medians across chunks.
    """

    def __init__(self, profile: dict, top: int = TOP_DRIFTED):
        self.profile, self.top = profile, top
        self.low = np.array([np.nan if v is None else v for v in profile["p01"]], dtype=np.float64)
        self.high = np.array([np.nan if v is None else v for v in profile["p99"]], dtype=np.float64)
        self.ranged = ~np.isnan(self.low) & ~np.isnan(self.high)
        self.outside = np.zeros(len(self.low), dtype=np.int64)
        self.seen = np.zeros(len(self.low), dtype=np.int64)
        self.rows = 0
        self.medians: list[tuple[int, np.ndarray]] = []

    def update(self, X: np.ndarray) -> "DriftCounter":
        """Count one chunk of rows (or a whole batch, in passes of ``CHUNK_ROWS``)."""
        X = np.asarray(X)
        for start in range(0, len(X), CHUNK_ROWS):
            chunk = np.asarray(X[start:start + CHUNK_ROWS], dtype=np.float64)
            self.seen += (~np.isnan(chunk)).sum(axis=0)
            self.outside += ((chunk < self.low) | (chunk > self.high)).sum(axis=0)  # NaN: False
        if len(X):
            sample = np.asarray(X[::max(1, len(X) // MEDIAN_ROWS)], dtype=np.float64)
            self.medians.append((len(X), column_medians(sample)))
        self.rows += len(X)
        return self

    def _median(self, j: int) -> float:
        weights = np.array([n for n, m in self.medians if not np.isnan(m[j])], dtype=float)
        values = np.array([m[j] for _, m in self.medians if not np.isnan(m[j])])
        if not values.size:
            return float("nan")
        order = np.argsort(values)
        cumulative = np.cumsum(weights[order])
        return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])

    def result(self, names: Sequence[str] | None = None) -> dict:
        """``{"share_outside", "share_imputed", "top_drifted": [{"sensor", "share_outside",
        "median", "train_p01", "train_p99"}]}``; each sensor named from ``names`` (as the file
        names it) or else the profile's feature names."""
        names = self.profile["features"] if names is None else names
        cells = self.rows * len(self.low)
        observed_in_range = int(self.seen[self.ranged].sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            per_sensor = np.where(self.ranged & (self.seen > 0),
                                  self.outside / np.maximum(self.seen, 1), 0.0)
        order = [int(j) for j in np.argsort(-per_sensor, kind="stable")[:self.top]
                 if per_sensor[j] > 0]
        return {
            "share_outside": float(self.outside[self.ranged].sum() / observed_in_range)
            if observed_in_range else 0.0,
            "share_imputed": float((cells - self.seen.sum()) / cells) if cells else 0.0,
            "top_drifted": [{"sensor": names[j],
                             "share_outside": float(per_sensor[j]),
                             "median": _json_float(self._median(j)),
                             "train_p01": _json_float(self.low[j]),
                             "train_p99": _json_float(self.high[j])} for j in order]}


def column_medians(X: np.ndarray) -> np.ndarray:
    """Each column's median over its observed values (NaN for an all-missing column).

    One sort of the whole block (NaN sorts last) instead of ``np.nanmedian``'s per-column loop.
    """
    ordered = np.sort(X, axis=0)
    n = (~np.isnan(X)).sum(axis=0)
    low = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[None, :], axis=0)[0]
    high = np.take_along_axis(ordered, np.maximum(n // 2, 0)[None, :], axis=0)[0]
    return np.where(n > 0, (low + high) / 2, np.nan)


def drift(profile: dict, X: np.ndarray, top: int = TOP_DRIFTED) -> dict:
    """How unlike the training data a batch looks.

    ``share_outside``: observed cells outside their sensor's training 1st-99th percentile
    range (over sensors that have one); ``share_imputed``: missing cells; ``top_drifted``: the
    ``top`` sensors with the largest share outside, with the batch median and training range.
    """
    return DriftCounter(profile, top).update(X).result()


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [_json_float(v) for v in values]
