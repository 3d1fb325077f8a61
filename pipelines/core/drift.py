"""Drift: how unlike its training data a scored batch looks, in one format for every module.

Every module's predict run stores one drift record (:func:`drift_record`) with its run, and
the dashboard charts its ``value`` over time::

    {"statistic": "psi", "value": 0.31, "level": 0.25, "alert": True,
     "summary": "predicted class mix vs training: PSI 0.31 (alert at 0.25)",
     "detail": {...small, JSON-able...}}

``value`` is the one headline figure (higher = more drift), ``alert`` is ``value >= level``.

The population stability index (:func:`psi`) compares a sample's shares over bins with a
reference's: ``sum((a - e) * ln(a / e))`` over bins, each share floored at ``EPSILON`` so that
an empty bin counts as large but finite. Bins come from the reference alone
(:func:`reference_bins`: its range and deciles), so a release can store its training data's bins and
shares (a few numbers) instead of the data. Usual reading: below 0.1 stable, 0.1-0.25 some
shift, above 0.25 (``PSI_ALERT``) a real shift.

A release keeps its reference statistics in one module-level file, ``drift_reference.json``
(:func:`write_reference`), listed and hashed in its manifest like every other file.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

EPSILON = 1e-4  # the smallest share a bin counts with (an empty bin)
PSI_ALERT = 0.25  # PSI at or above which a batch counts as drifted
BINS = 10  # reference quantile bins
REFERENCE_FILE = "drift_reference.json"


def reference_bins(reference: Sequence[float], bins: int = BINS) -> dict:
    """The bins a sample is compared on, from the reference alone, and the reference's shares.

    ``{"low", "high", "edges", "shares"}``: ``low`` and ``high`` are the reference's smallest
    and largest value, ``edges`` its inner quantiles (deciles; duplicates merged, so a value
    repeated across quantiles makes one bin). The bins are: below ``low``, then
    ``edges[k-1] < x <= edges[k]`` from ``low`` to ``high``, then above ``high``; the
    reference has nothing in the two outer ones, so a sample outside its range always counts.
    Missing values are left out. ``shares`` has ``len(edges) + 3`` entries.
    """
    values = _finite(reference)
    if not values.size:
        raise ValueError("reference_bins: the reference holds no finite value")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    bins_ = {"low": float(values.min()), "high": float(values.max()),
             "edges": [float(e) for e in edges]}
    return bins_ | {"shares": bin_shares(values, bins_)}


def bin_shares(sample: Sequence[float], bins: Mapping) -> list[float]:
    """Each bin's share of the finite values of ``sample`` (``bins`` as from
    :func:`reference_bins`; its shares are not used); all zeros for a sample with none."""
    values = _finite(sample)
    edges = np.asarray(bins["edges"], dtype=float)
    index = 1 + np.searchsorted(edges, values, side="left")
    index[values < bins["low"]] = 0
    index[values > bins["high"]] = len(edges) + 2
    counts = np.bincount(index, minlength=len(edges) + 3)
    return [float(c) for c in counts / max(len(values), 1)]


def psi_of_shares(expected: Sequence[float], actual: Sequence[float],
                  epsilon: float = EPSILON) -> float:
    """The population stability index of ``actual`` shares against ``expected`` ones (same
    bins, or categories in the same order); each share floored at ``epsilon``."""
    e = np.maximum(np.asarray(expected, dtype=float), epsilon)
    a = np.maximum(np.asarray(actual, dtype=float), epsilon)
    if e.shape != a.shape:
        raise ValueError(f"psi: {e.size} expected shares but {a.size} actual ones")
    return float(np.sum((a - e) * np.log(a / e)))


def psi_against(bins: Mapping, sample: Sequence[float], epsilon: float = EPSILON) -> float:
    """The PSI of ``sample`` against stored reference bins (:func:`reference_bins`)."""
    return psi_of_shares(bins["shares"], bin_shares(sample, bins), epsilon)


def psi(reference: Sequence[float], sample: Sequence[float], bins: int = BINS,
        epsilon: float = EPSILON) -> float:
    """The PSI of ``sample`` against ``reference`` on the reference's quantile bins: about 0
    for samples alike, large (tens) for disjoint ones."""
    return psi_against(reference_bins(reference, bins), sample, epsilon)


def category_shares(counts: Mapping[str, float], categories: Sequence[str]) -> list[float]:
    """``counts`` as shares over ``categories`` in that order (a missing one: 0)."""
    total = sum(float(counts.get(c, 0)) for c in categories)
    return [float(counts.get(c, 0)) / total if total else 0.0 for c in categories]


def drift_record(statistic: str, value: float, level: float, summary: str,
                 detail: dict | None = None) -> dict:
    """The one drift format a run stores (see the module docstring); ``value`` and ``level``
    must be finite (the run row is JSON without NaN)."""
    value, level = float(value), float(level)
    if not (math.isfinite(value) and math.isfinite(level)):
        raise ValueError(f"drift {statistic}: value {value} and level {level} must be finite")
    return {"statistic": statistic, "value": value, "level": level, "alert": value >= level,
            "summary": summary, "detail": detail or {}}


def write_reference(release: Path, reference: dict) -> Path:
    """Write ``reference`` (the training data's drift statistics) as the release's
    ``drift_reference.json``; the caller lists it in the manifest (``add_release_files`` or
    ``write_release``)."""
    path = Path(release) / REFERENCE_FILE
    path.write_text(json.dumps(reference, indent=1, allow_nan=False) + "\n")
    return path


def _finite(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]
