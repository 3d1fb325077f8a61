"""Sensor preprocessing: drop unusable columns, impute medians, standardise.

``fit_preprocessor`` learns every statistic from the training rows it is given (inside each
cross-validation fold during evaluation); ``impute`` and ``standardise`` apply them. The
parameters are plain JSON so they travel in the artifact bundle and serving can never drift
from training. Nothing here assumes a sensor count: it follows the matrix it is given.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def fit_preprocessor(X: np.ndarray, feature_names: Sequence[str] | None = None,
                     max_missing: float = 0.5, min_std: float = 1e-12) -> dict:
    """Learn which features to keep and their medians, means and scales from training rows.

    A feature is dropped when more than ``max_missing`` of its values are missing or when it
    has no variance on the observed values. Medians are taken over observed values; means
    and standard deviations after imputation (for the standardised view).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"expected a (rows, features) matrix, got shape {X.shape}")
    names = list(feature_names) if feature_names is not None else \
        [f"feature_{i + 1}" for i in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} feature names for {X.shape[1]} columns")
    missing = np.isnan(X).mean(axis=0)
    with np.errstate(all="ignore"):
        std_observed = np.nanstd(X, axis=0)
    keep = (missing <= max_missing) & (np.nan_to_num(std_observed) > min_std)
    kept = X[:, keep]
    medians = np.nanmedian(kept, axis=0)
    imputed = np.where(np.isnan(kept), medians, kept)
    mean = imputed.mean(axis=0)
    scale = imputed.std(axis=0)
    scale[scale <= min_std] = 1.0
    return {
        "max_missing": max_missing,
        "kept": np.flatnonzero(keep).tolist(),
        "dropped_missing": [names[i] for i in np.flatnonzero(missing > max_missing)],
        "dropped_constant": [names[i] for i in
                             np.flatnonzero((missing <= max_missing) & ~keep)],
        "median": medians.tolist(),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "q01": np.quantile(imputed, 0.01, axis=0).tolist(),
        "q99": np.quantile(imputed, 0.99, axis=0).tolist(),
        "missing_rate": missing.tolist(),
    }


def impute(params: dict, X: np.ndarray) -> np.ndarray:
    """Keep the fitted features and fill their missing values with the training medians."""
    kept = np.asarray(X, dtype=float)[:, params["kept"]]
    return np.where(np.isnan(kept), np.asarray(params["median"]), kept)


def standardise(params: dict, X_imputed: np.ndarray) -> np.ndarray:
    """Scale imputed features with the training mean and standard deviation."""
    return ((X_imputed - np.asarray(params["mean"])) / np.asarray(params["scale"])).astype(np.float32)


def training_range(params: dict, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's 1st and 99th training percentile, NaN for dropped features."""
    low = np.full(n_features, np.nan)
    high = np.full(n_features, np.nan)
    low[params["kept"]], high[params["kept"]] = params["q01"], params["q99"]
    return low, high
