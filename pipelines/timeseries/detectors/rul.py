"""Remaining useful life: gradient-boosted trees (XGBoost) on window features.

Input: standardised windows (windows, cycles, sensors), turned into the six features per
sensor of ``transform.window_features``. Target: the piecewise-linear RUL, ``min(RUL, cap)``.
``predict_rul`` gives the RUL in cycles (never below 0). As a detector its score is the
"RUL deficit" ``cap - predicted RUL``: higher is closer to failure, so "predicted RUL <= 30"
is "score >= cap - 30". ``explain`` gives each sensor's share of that deficit (XGBoost's tree
path contributions, summed over the sensor's six features, sign flipped). The model is stored
in XGBoost's JSON format.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import xgboost as xgb

from pipelines.core.detectors import BaseDetector, FeatureExplanation, InvalidInputError
from pipelines.timeseries.schema import RUL_CAP
from pipelines.timeseries.transform import FEATURES, window_features

# at most this many windows are scored on one thread: waking OpenMP threads costs more than
# a few rows take (one window: ~0.3 ms on one thread, ~24 ms on two on a busy 2-core machine)
SMALL_BATCH = 64


class XGBoostRULDetector(BaseDetector):
    """RUL regressor; ``score`` is ``cap - predicted RUL`` (the RUL deficit, in cycles)."""

    name: ClassVar[str] = "xgboost_rul"
    input_ndim: ClassVar[int] = 3
    MODEL_FILE: ClassVar[str] = "model.json"

    def __init__(self, *, cap: float = RUL_CAP, n_estimators: int = 400, max_depth: int = 4,
                 learning_rate: float = 0.03, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, min_child_weight: float = 5.0,
                 n_jobs: int = 1, random_state: int = 0):
        self.cap = cap
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.n_jobs = n_jobs
        self.random_state = random_state

    @property
    def score_range(self) -> tuple[float, float]:  # type: ignore[override]
        """A deficit can be negative (RUL above the cap) but never above the cap."""
        return (-float("inf"), float(self.cap))

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None) -> "XGBoostRULDetector":
        """Fit on windows ``X`` with ``y`` the true RUL at each window's last cycle (capped here)."""
        if y is None:
            raise InvalidInputError(f"{self.name} is supervised: pass y, the RUL of each window")
        X = self._check_input(X, reset=True, feature_names=feature_names)
        target = np.minimum(np.asarray(y, dtype=float), self.cap)
        model = xgb.XGBRegressor(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            learning_rate=self.learning_rate, subsample=self.subsample,
            colsample_bytree=self.colsample_bytree, min_child_weight=self.min_child_weight,
            n_jobs=self.n_jobs, random_state=self.random_state, tree_method="hist")
        model.fit(window_features(X), target)
        self._set_boosters(model.get_booster())
        return self

    def _set_boosters(self, booster: xgb.Booster) -> None:
        """The booster with ``n_jobs`` threads, and a one-thread copy for small batches."""
        booster.set_param({"nthread": self.n_jobs})
        self.booster_ = booster
        self.small_booster_ = booster.copy()
        self.small_booster_.set_param({"nthread": 1})

    def predict_rul(self, X: np.ndarray) -> np.ndarray:
        """Predicted RUL per window, in cycles (at least 0)."""
        X = self._check_input(X, reset=False)
        booster = self.small_booster_ if len(X) <= SMALL_BATCH else self.booster_
        return np.maximum(np.asarray(booster.inplace_predict(window_features(X)),
                                     dtype=float), 0.0)

    def rul_from_score(self, scores: np.ndarray) -> np.ndarray:
        """The RUL a score stands for (``cap - score``)."""
        return self.cap - np.asarray(scores, dtype=float)

    def score(self, X: np.ndarray) -> np.ndarray:
        """RUL deficit per window: ``cap - predicted RUL``."""
        return self.cap - self.predict_rul(X)

    def explain(self, X: np.ndarray) -> FeatureExplanation:
        """Deficit and each sensor's push towards failure (cycles of RUL it took away)."""
        X = self._check_input(X, reset=False)
        small = len(X) <= SMALL_BATCH
        matrix = xgb.DMatrix(window_features(X), nthread=1 if small else self.n_jobs)
        booster = self.small_booster_ if small else self.booster_
        contrib = booster.predict(matrix, pred_contribs=True, approx_contribs=True)
        rul = np.maximum(contrib.sum(axis=1, dtype=np.float64), 0.0)
        n_sensors = X.shape[2]
        per = contrib[:, :-1].reshape(len(X), len(FEATURES), n_sensors).sum(axis=1)
        return FeatureExplanation(self.cap - rul, -per.astype(float),
                                  tuple(self.feature_names_in_))

    def save(self, directory: Path) -> dict:
        """Write the booster in XGBoost's JSON format; ``{file: role}`` for the manifest."""
        self.check_is_fitted()
        self.booster_.save_model(Path(directory) / self.MODEL_FILE)
        return {self.MODEL_FILE: "xgboost RUL regressor (JSON)"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "XGBoostRULDetector":
        """Rebuild a fitted detector from a bundle written by :meth:`save`."""
        detector = cls._from_manifest(manifest, **overrides)
        detector._set_boosters(xgb.Booster(model_file=str(Path(directory) / cls.MODEL_FILE)))
        return detector


