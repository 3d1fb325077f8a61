"""Isolation Forest on window features: trained with scikit-learn, served from node arrays.

Input: standardised windows (windows, cycles, sensors); each window becomes the six features
per sensor of ``transform.window_features``. The fitted forest is stored as plain arrays
(``pipelines.core.trees``; no pickle) and scored by a vectorised walk. A node's value is the
expected isolation depth of a row that stops there, ``depth + c(samples at the node)``, so a
leaf's value is scikit-learn's path length and the score is its
``2 ** (-mean path length / c(max_samples))``: in (0, 1), higher is more anomalous (the
negative of ``IsolationForest.score_samples``). ``explain`` credits each split's change of
expected depth to its sensor: a sensor whose splits isolate the window early pushes its score up.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import BaseDetector, FeatureExplanation, NotFittedError
from pipelines.core.trees import TREE_ARRAYS, flatten, node_depths, walk
from pipelines.timeseries.transform import FEATURES, window_features

logger = logging.getLogger(__name__)

CHUNK = 4096


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean depth of an unsuccessful search in a binary tree of ``n`` points."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class IsolationForestDetector(BaseDetector):
    """Anomaly score in (0, 1) from an Isolation Forest over window features."""

    name: ClassVar[str] = "isolation_forest"
    input_ndim: ClassVar[int] = 3
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    MODEL_FILE: ClassVar[str] = "trees.npz"
    META_FILE: ClassVar[str] = "forest.json"

    def __init__(self, *, n_estimators: int = 200, max_samples: int = 256,
                 max_features: float = 1.0, n_jobs: int = 1, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None) -> "IsolationForestDetector":
        """Fit on (normal) windows; ``y`` is ignored (unsupervised)."""
        from sklearn.ensemble import IsolationForest

        X = self._check_input(X, reset=True, feature_names=feature_names)
        features = window_features(X)
        forest = IsolationForest(n_estimators=self.n_estimators,
                                 max_samples=min(self.max_samples, len(features)),
                                 max_features=self.max_features, n_jobs=self.n_jobs,
                                 random_state=self.random_state).fit(features)
        trees = [e.tree_ for e in forest.estimators_]
        values = [node_depths(t) + average_path_length(t.n_node_samples) for t in trees]
        self.trees_ = flatten(trees, values, forest.estimators_features_)
        self.normaliser_ = float(average_path_length(np.array([forest.max_samples_]))[0])
        self.sklearn_ = forest  # training only: the parity test compares with it
        return self

    def _check_trees(self) -> None:
        self.check_is_fitted()
        if not hasattr(self, "trees_"):
            raise NotFittedError(f"{self.name} is not fitted: call fit() or load a bundle first")

    def _scores(self, features: np.ndarray, contributions: np.ndarray | None = None
                ) -> np.ndarray:
        leaves = walk(self.trees_, features, contributions)
        depth = self.trees_["value"][leaves].mean(axis=1)
        return np.power(2.0, -depth / self.normaliser_)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per window, in (0, 1)."""
        X = self._check_input(X, reset=False)
        self._check_trees()
        return np.concatenate([self._scores(window_features(X[s:s + CHUNK]))
                               for s in range(0, len(X), CHUNK)])

    def explain(self, X: np.ndarray) -> FeatureExplanation:
        """Scores and each sensor's push towards "anomalous" (isolation depth it removed)."""
        X = self._check_input(X, reset=False)
        self._check_trees()
        n_sensors = X.shape[2]
        scores = np.empty(len(X))
        out = np.zeros((len(X), n_sensors))
        n_trees = len(self.trees_["roots"])
        for s in range(0, len(X), CHUNK):
            features = window_features(X[s:s + CHUNK])
            contributions = np.zeros(features.shape)
            scores[s:s + CHUNK] = self._scores(features, contributions)
            # a split that lowers the expected depth makes the window look more anomalous
            per = -contributions.reshape(len(features), len(FEATURES), n_sensors).sum(axis=1)
            out[s:s + CHUNK] = per / n_trees
        return FeatureExplanation(scores, out, tuple(self.feature_names_in_))

    def save(self, directory: Path) -> dict:
        """Write the node arrays and the normaliser; ``{file: role}`` for the manifest."""
        self._check_trees()
        directory = Path(directory)
        np.savez_compressed(directory / self.MODEL_FILE, **self.trees_)
        (directory / self.META_FILE).write_text(json.dumps({"normaliser": self.normaliser_}))
        return {self.MODEL_FILE: "isolation forest as node arrays (value: expected depth)",
                self.META_FILE: "c(max_samples), the depth normaliser"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "IsolationForestDetector":
        """Rebuild a scoring-only detector (numpy only) from a bundle written by :meth:`save`."""
        directory = Path(directory)
        detector = cls._from_manifest(manifest, **overrides)
        with np.load(directory / cls.MODEL_FILE, allow_pickle=False) as arrays:
            detector.trees_ = {k: arrays[k] for k in TREE_ARRAYS}
        detector.normaliser_ = float(json.loads((directory / cls.META_FILE).read_text())
                                     ["normaliser"])
        if not math.isfinite(detector.normaliser_) or detector.normaliser_ <= 0:
            raise ValueError(f"{directory}: invalid depth normaliser")
        return detector
