"""Gradient-boosted trees (XGBoost) on window features: the RUL regressor and the end-of-life
classifier share the booster plumbing here.

Input: standardised windows (windows, cycles, sensors), turned into the six features per
sensor of ``transform.window_features``, and ``history`` (windows, sensors), each window's
machine history slope per sensor (``transform.history_slopes``): seven features per sensor.
Without ``history`` the window's own slope stands in (a window is all the history given);
``use_history=False`` reads the six window features only (the releases before it). The
history slope is what lifted the end-of-life F1 on engines cut like the official test set
from 0.84 to 0.91: 30 cycles give only a noisy wear rate.

* :class:`XGBoostRULDetector` (``xgboost_rul``): target the piecewise-linear RUL,
  ``min(RUL, cap)``. ``predict_rul`` gives the RUL in cycles (never below 0). As a detector
  its score is the "RUL deficit" ``cap - predicted RUL``: higher is closer to failure, so
  "predicted RUL <= L" is "score >= cap - L". ``explain`` gives each sensor's share of that
  deficit (XGBoost's tree path contributions, summed over the sensor's six features, sign
  flipped).
* :class:`XGBoostEOLDetector` (``xgboost_eol``): a classifier of "end of life", RUL <=
  ``anomaly_rul`` (30, the evaluation label), trained on the same windows with logistic loss;
  its score is the probability. Its targets are soft near the boundary, ``sigmoid((anomaly_rul
  + 0.5 - RUL) / label_scale)`` (0.5 at the boundary, 0.9 six cycles inside it at scale 4),
  so a window one cycle either side of 30 is not taught as the opposite certainty; with
  ``label_scale`` 0 they are the hard 0/1 labels. ``explain`` gives each sensor's share of
  the log-odds.

Models are stored in XGBoost's JSON format.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import xgboost as xgb

from pipelines.core.detectors import BaseDetector, FeatureExplanation, InvalidInputError
from pipelines.timeseries.schema import ANOMALY_RUL, RUL_CAP
from pipelines.timeseries.transform import FEATURES, window_features, window_slopes

# at most this many windows are scored on one thread: waking OpenMP threads costs more than
# a few rows take (one window: ~0.3 ms on one thread, ~24 ms on two on a busy 2-core machine)
SMALL_BATCH = 64


class _WindowBooster(BaseDetector):
    """XGBoost on window features: fitting, one-thread scoring of small batches, per-sensor
    contributions, JSON save/load. Subclasses set the objective and the score."""

    input_ndim: ClassVar[int] = 3
    MODEL_FILE: ClassVar[str] = "model.json"
    ROLE: ClassVar[str] = "xgboost model (JSON)"

    @property
    def uses_history(self) -> bool:
        """Whether the model reads the history slopes (``use_history``)."""
        return self.use_history

    def _features(self, X: np.ndarray, history: np.ndarray | None) -> np.ndarray:
        """Window features and the history slope per sensor (checked) of checked windows."""
        if not self.use_history:
            return window_features(X)
        if history is None:
            return np.concatenate([window_features(X), window_slopes(X)], axis=1)
        try:
            history = np.asarray(history, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{self.name}: history is not numeric ({exc})") from None
        if history.shape != (X.shape[0], X.shape[2]):
            raise InvalidInputError(f"{self.name}: history must hold one slope per sensor for "
                                    f"each window, shape {(X.shape[0], X.shape[2])}, got "
                                    f"{history.shape}")
        if not np.isfinite(history).all():
            raise InvalidInputError(f"{self.name}: history holds non-finite values")
        return np.concatenate([window_features(X), history], axis=1)

    def _fit_booster(self, X: np.ndarray, target: np.ndarray, objective: str,
                     feature_names: Sequence[str] | None, history: np.ndarray | None) -> None:
        X = self._check_input(X, reset=True, feature_names=feature_names)
        model = xgb.XGBRegressor(objective=objective, n_estimators=self.n_estimators,
                    max_depth=self.max_depth, learning_rate=self.learning_rate,
                    subsample=self.subsample, colsample_bytree=self.colsample_bytree,
                    min_child_weight=self.min_child_weight, n_jobs=self.n_jobs,
                    random_state=self.random_state, tree_method="hist")
        model.fit(self._features(X, history), target)
        self._set_boosters(model.get_booster())

    def _set_boosters(self, booster: xgb.Booster) -> None:
        """The booster with ``n_jobs`` threads, and a one-thread copy for small batches."""
        booster.set_param({"nthread": self.n_jobs})
        self.booster_ = booster
        self.small_booster_ = booster.copy()
        self.small_booster_.set_param({"nthread": 1})

    def _raw(self, X: np.ndarray, history: np.ndarray | None, margin: bool = False
             ) -> np.ndarray:
        """The booster's output per window (``margin``: before the link function)."""
        X = self._check_input(X, reset=False)
        booster = self.small_booster_ if len(X) <= SMALL_BATCH else self.booster_
        return np.asarray(booster.inplace_predict(
            self._booster_input(X, history), predict_type="margin" if margin else "value"),
            dtype=float)

    def _booster_input(self, X: np.ndarray, history: np.ndarray | None) -> np.ndarray:
        """:meth:`_features`, after checking the booster was trained on as many (a mismatch
        would otherwise reach XGBoost's native code)."""
        features = self._features(X, history)
        if self.booster_.num_features() != features.shape[1]:
            raise InvalidInputError(f"{self.name}: the stored model takes "
                                    f"{self.booster_.num_features()} features, these windows "
                                    f"give {features.shape[1]}; retrain the release")
        return features

    def _contributions(self, X: np.ndarray, history: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(margin per window, each sensor's contribution to it summed over its features)."""
        X = self._check_input(X, reset=False)
        small = len(X) <= SMALL_BATCH
        matrix = xgb.DMatrix(self._booster_input(X, history),
                             nthread=1 if small else self.n_jobs)
        booster = self.small_booster_ if small else self.booster_
        contrib = booster.predict(matrix, pred_contribs=True, approx_contribs=True)
        margin = contrib.sum(axis=1, dtype=np.float64)
        groups = len(FEATURES) + int(self.use_history)
        per = contrib[:, :-1].reshape(len(X), groups, X.shape[2]).sum(axis=1)
        return margin, per.astype(float)

    def save(self, directory: Path) -> dict:
        """Write the booster in XGBoost's JSON format; ``{file: role}`` for the manifest."""
        self.check_is_fitted()
        self.booster_.save_model(Path(directory) / self.MODEL_FILE)
        return {self.MODEL_FILE: self.ROLE}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "_WindowBooster":
        """Rebuild a fitted detector from a bundle written by :meth:`save`."""
        detector = cls._from_manifest(manifest, **overrides)
        detector._set_boosters(xgb.Booster(model_file=str(Path(directory) / cls.MODEL_FILE)))
        return detector


class XGBoostRULDetector(_WindowBooster):
    """RUL regressor; ``score`` is ``cap - predicted RUL`` (the RUL deficit, in cycles)."""

    name: ClassVar[str] = "xgboost_rul"
    ROLE: ClassVar[str] = "xgboost RUL regressor (JSON)"

    def __init__(self, *, cap: float = RUL_CAP, n_estimators: int = 400, max_depth: int = 4,
                 learning_rate: float = 0.03, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, min_child_weight: float = 5.0,
                 use_history: bool = True, n_jobs: int = 1, random_state: int = 0):
        self.cap = cap
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.n_jobs = n_jobs
        self.use_history = use_history
        self.random_state = random_state

    @property
    def score_range(self) -> tuple[float, float]:  # type: ignore[override]
        """A deficit can be negative (RUL above the cap) but never above the cap."""
        return (-float("inf"), float(self.cap))

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            history: np.ndarray | None = None) -> "XGBoostRULDetector":
        """Fit on windows ``X`` with ``y`` the true RUL at each window's last cycle (capped here)."""
        if y is None:
            raise InvalidInputError(f"{self.name} is supervised: pass y, the RUL of each window")
        target = np.minimum(np.asarray(y, dtype=float), self.cap)
        self._fit_booster(X, target, "reg:squarederror", feature_names, history)
        return self

    def predict_rul(self, X: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Predicted RUL per window, in cycles (at least 0)."""
        return np.maximum(self._raw(X, history), 0.0)

    def rul_from_score(self, scores: np.ndarray) -> np.ndarray:
        """The RUL a score stands for (``cap - score``)."""
        return self.cap - np.asarray(scores, dtype=float)

    def score(self, X: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """RUL deficit per window: ``cap - predicted RUL``."""
        return self.cap - self.predict_rul(X, history)

    def explain(self, X: np.ndarray, history: np.ndarray | None = None) -> FeatureExplanation:
        """Deficit and each sensor's push towards failure (cycles of RUL it took away)."""
        margin, per = self._contributions(X, history)
        return FeatureExplanation(self.cap - np.maximum(margin, 0.0), -per,
                                  tuple(self.feature_names_in_))


class XGBoostEOLDetector(_WindowBooster):
    """End-of-life classifier; ``score`` is the probability that RUL <= ``anomaly_rul``."""

    name: ClassVar[str] = "xgboost_eol"
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    ROLE: ClassVar[str] = "xgboost end-of-life classifier (JSON)"

    def __init__(self, *, anomaly_rul: float = ANOMALY_RUL, label_scale: float = 4.0,
                 n_estimators: int = 400,
                 max_depth: int = 4, learning_rate: float = 0.03, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, min_child_weight: float = 5.0,
                 use_history: bool = True, n_jobs: int = 1, random_state: int = 0):
        self.anomaly_rul = anomaly_rul
        self.label_scale = label_scale
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.n_jobs = n_jobs
        self.use_history = use_history
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            history: np.ndarray | None = None) -> "XGBoostEOLDetector":
        """Fit on windows ``X`` with ``y`` the true RUL at each window's last cycle; the class
        is RUL <= ``anomaly_rul`` (soft targets, see the module doc)."""
        if y is None:
            raise InvalidInputError(f"{self.name} is supervised: pass y, the RUL of each window")
        rul = np.asarray(y, dtype=float)
        if (rul <= self.anomaly_rul).all() or (rul > self.anomaly_rul).all():
            raise InvalidInputError(f"{self.name} needs windows on both sides of RUL "
                                    f"{self.anomaly_rul:g}")
        if self.label_scale > 0:
            target = 1.0 / (1.0 + np.exp((rul - self.anomaly_rul - 0.5) / self.label_scale))
        else:
            target = (rul <= self.anomaly_rul).astype(float)
        self._fit_booster(X, target, "binary:logistic", feature_names, history)
        return self

    def score(self, X: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Probability of end of life (RUL <= ``anomaly_rul``) per window."""
        return self._raw(X, history)

    def explain(self, X: np.ndarray, history: np.ndarray | None = None) -> FeatureExplanation:
        """Probability and each sensor's push towards end of life (its share of the log-odds)."""
        margin, per = self._contributions(X, history)
        return FeatureExplanation(1.0 / (1.0 + np.exp(-margin)), per,
                                  tuple(self.feature_names_in_))
