"""Extremely randomised trees (scikit-learn) on median-imputed sensors plus missing-value indicators.

SECOM's gaps come in blocks that carry information, so besides the imputed values each
sensor that was sometimes (not always) missing in training gets a 0/1 "was missing" column.
The fitted forest is stored as plain arrays (``trees.npz``: split feature, threshold,
children and fail share per node; no pickle) and scored by a vectorised walk over all trees
at once, which also yields per-sensor contributions (each split's change in fail share,
credited to its sensor, summed along the path and averaged over trees).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import BaseDetector, FeatureExplanation, NotFittedError
from pipelines.core.trees import TREE_ARRAYS, flatten
from pipelines.core.trees import walk as _walk
from pipelines.sensor.transform import fit_preprocessor, impute

logger = logging.getLogger(__name__)

EXPLAIN_CHUNK = 1024  # rows per pass when explaining (bounds the contribution buffer)


class ExtraTreesDetector(BaseDetector):
    """Fault score: the forest's mean fail share of the leaves a wafer lands in."""

    name: ClassVar[str] = "extra_trees"
    allow_nan: ClassVar[bool] = True  # imputed, and the gaps become indicator columns
    MODEL_FILE: ClassVar[str] = "trees.npz"
    PREPROCESSOR_FILE: ClassVar[str] = "preprocessor.json"

    def __init__(self, *, n_estimators: int = 300, max_features: float = 0.05,
                 min_samples_leaf: int = 2, class_weight: str | None = "balanced_subsample",
                 missing_indicators: bool = True, max_missing: float = 0.5, n_jobs: int = 2,
                 random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.missing_indicators = missing_indicators
        self.max_missing = max_missing
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None) -> "ExtraTreesDetector":
        """Fit imputation, indicators and the forest on these rows (``y``: 1 fail, 0 pass)."""
        from sklearn.ensemble import ExtraTreesClassifier

        if y is None:
            raise ValueError("ExtraTreesDetector is supervised: pass labels y (1 = fail, 0 = pass)")
        X = self._check_input(X, reset=True, feature_names=feature_names)
        y = np.asarray(y).astype(int)
        pre = fit_preprocessor(X, self.feature_names_in_, max_missing=self.max_missing)
        rate = np.asarray(pre["missing_rate"])
        pre["indicators"] = np.flatnonzero((rate > 0) & (rate < 1)).tolist() \
            if self.missing_indicators else []
        self.preprocessor_ = pre
        forest = ExtraTreesClassifier(
            n_estimators=self.n_estimators, max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf, class_weight=self.class_weight,
            n_jobs=self.n_jobs, random_state=self.random_state).fit(self._features(X), y)
        self.trees_ = _flatten(forest)
        return self

    def _features(self, X: np.ndarray) -> np.ndarray:
        """Imputed kept sensors, then one 0/1 column per indicator sensor (float32, as sklearn)."""
        pre = self.preprocessor_
        values = impute(pre, X)
        gaps = np.isnan(X[:, pre["indicators"]])
        return np.hstack([values, gaps]).astype(np.float32)

    def _sensor_of_feature(self) -> np.ndarray:
        """The sensor (column of X) each model feature comes from."""
        return np.asarray(self.preprocessor_["kept"] + self.preprocessor_["indicators"], dtype=int)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Fault score per row (mean fail share of the leaves; not a calibrated probability)."""
        X = self._check_input(X, reset=False)
        self._check_trees()
        leaves = _walk(self.trees_, self._features(X))
        return self.trees_["value"][leaves].mean(axis=1)

    def explain(self, X: np.ndarray) -> FeatureExplanation:
        """Fault score and each sensor's contribution to it (value and indicator splits summed)."""
        X = self._check_input(X, reset=False)
        self._check_trees()
        sensor = self._sensor_of_feature()
        scores = np.empty(len(X))
        full = np.zeros((len(X), self.n_features_in_))
        for start in range(0, len(X), EXPLAIN_CHUNK):
            part = slice(start, start + EXPLAIN_CHUNK)
            contributions = np.zeros((len(X[part]), len(sensor)))
            leaves = _walk(self.trees_, self._features(X[part]), contributions)
            scores[part] = self.trees_["value"][leaves].mean(axis=1)
            np.add.at(full[part].T, sensor, contributions.T / len(self.trees_["roots"]))
        return FeatureExplanation(scores, full, tuple(self.feature_names_in_))

    def _check_trees(self) -> None:
        self.check_is_fitted()
        if not hasattr(self, "trees_"):
            raise NotFittedError(f"{self.name} is not fitted: call fit() or load a bundle first")

    def save(self, directory: Path) -> dict:
        """Write the tree arrays and preprocessor; return ``{file: role}`` for the manifest."""
        self._check_trees()
        directory = Path(directory)
        np.savez_compressed(directory / self.MODEL_FILE, **self.trees_)
        (directory / self.PREPROCESSOR_FILE).write_text(json.dumps(self.preprocessor_))
        return {self.MODEL_FILE: "forest as node arrays", self.PREPROCESSOR_FILE: "preprocessor"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "ExtraTreesDetector":
        """Rebuild a fitted detector from a bundle written by :meth:`save`."""
        directory = Path(directory)
        detector = cls._from_manifest(manifest, **overrides)
        with np.load(directory / cls.MODEL_FILE, allow_pickle=False) as arrays:
            detector.trees_ = {k: arrays[k] for k in TREE_ARRAYS}
        detector.preprocessor_ = json.loads((directory / cls.PREPROCESSOR_FILE).read_text())
        return detector


def _flatten(forest) -> dict[str, np.ndarray]:
    """The forest as node arrays; a node's value is its fail share (see ``core.trees``)."""
    trees = [estimator.tree_ for estimator in forest.estimators_]
    values = [tree.value[:, 0, 1] / tree.value[:, 0, :].sum(axis=1) for tree in trees]
    return flatten(trees, values)
