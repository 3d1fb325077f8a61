"""Supervised gradient-boosted trees (XGBoost) with class-imbalance handling.

``imbalance="scale_pos_weight"`` weights the fail class by the pass/fail ratio of the training
rows; ``imbalance="smote"`` oversamples the fail class with imbalanced-learn's SMOTE on the
training rows only (never on rows that are later scored for evaluation).

``missing="median"`` fills gaps with the training medians; ``missing="native"`` leaves them
as NaN so each split learns which way missing values go (SECOM's gaps come in blocks that
carry information). With ``num_parallel_tree > 1`` and one boosting round the booster is a
random forest, still served by XGBoost's own runtime.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import xgboost as xgb

from pipelines.core.detectors import BaseDetector, FeatureExplanation
from pipelines.core.xgb_paths import PathContributions, path_contributions
from pipelines.sensor.transform import fit_preprocessor, impute

logger = logging.getLogger(__name__)

IMBALANCE_METHODS = ("scale_pos_weight", "smote", "none")
MISSING_METHODS = ("median", "native")


class XGBoostDetector(BaseDetector):
    """Fault score from XGBoost (the logistic output; with scale_pos_weight not a calibrated
    probability); per-row sensor contributions from its tree paths."""

    name: ClassVar[str] = "xgboost"
    allow_nan: ClassVar[bool] = True  # missing sensors are imputed or handled natively
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)  # a probability-like score
    MODEL_FILE: ClassVar[str] = "model.ubj"
    PREPROCESSOR_FILE: ClassVar[str] = "preprocessor.json"

    def __init__(self, *, imbalance: str = "scale_pos_weight", n_estimators: int = 400,
                 max_depth: int = 3, learning_rate: float = 0.02, subsample: float = 0.7,
                 colsample_bynode: float = 0.3, min_child_weight: float = 2.0,
                 num_parallel_tree: int = 1, reg_lambda: float = 1.0, missing: str = "median",
                 max_missing: float = 0.5, n_jobs: int = 2, random_state: int = 0):
        self.imbalance = imbalance
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bynode = colsample_bynode
        self.min_child_weight = min_child_weight
        self.num_parallel_tree = num_parallel_tree
        self.reg_lambda = reg_lambda
        self.missing = missing
        self.max_missing = max_missing
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None) -> "XGBoostDetector":
        """Fit preprocessing and trees on these rows; ``y`` is 1 for fail, 0 for pass."""
        if y is None:
            raise ValueError("XGBoostDetector is supervised: pass labels y (1 = fail, 0 = pass)")
        if self.imbalance not in IMBALANCE_METHODS:
            raise ValueError(f"imbalance must be one of {IMBALANCE_METHODS}, got '{self.imbalance}'")
        if self.missing not in MISSING_METHODS or (self.missing == "native" and
                                                    self.imbalance == "smote"):
            raise ValueError(f"missing must be one of {MISSING_METHODS} ('median' with SMOTE), "
                             f"got '{self.missing}'")
        X = self._check_input(X, reset=True, feature_names=feature_names)
        y = np.asarray(y).astype(int)
        self.preprocessor_ = fit_preprocessor(X, self.feature_names_in_,
                                              max_missing=self.max_missing)
        features = self._features(X)
        weight = 1.0
        if self.imbalance == "smote":
            from imblearn.over_sampling import SMOTE
            features, y = SMOTE(random_state=self.random_state).fit_resample(features, y)
        elif self.imbalance == "scale_pos_weight":
            weight = float((y == 0).sum() / max((y == 1).sum(), 1))
        params = {
            "objective": "binary:logistic", "eval_metric": "aucpr", "tree_method": "hist",
            "max_depth": self.max_depth, "eta": self.learning_rate, "subsample": self.subsample,
            "colsample_bynode": self.colsample_bynode, "min_child_weight": self.min_child_weight,
            "num_parallel_tree": self.num_parallel_tree, "scale_pos_weight": weight,
            "lambda": self.reg_lambda,
            "nthread": self.n_jobs, "seed": self.random_state,
        }
        self.booster_ = xgb.train(params, xgb.DMatrix(features, label=y),
                                  num_boost_round=self.n_estimators)
        return self

    def _features(self, X: np.ndarray) -> np.ndarray:
        if self.missing == "native":
            return X[:, self.preprocessor_["kept"]]
        return impute(self.preprocessor_, X)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Fault score per row (0..1)."""
        X = self._check_input(X, reset=False)
        return np.asarray(self.booster_.inplace_predict(self._features(X)), dtype=float)

    def explain(self, X: np.ndarray) -> FeatureExplanation:
        """Fault score and per-sensor contributions to its log-odds (tree paths).

        The contributions plus the bias sum to the margin, so the score comes from the
        same pass. Dropped sensors contribute 0.
        """
        X = self._check_input(X, reset=False)
        matrix = xgb.DMatrix(self._features(X), nthread=self.n_jobs)
        paths = self._paths()
        contrib = paths(matrix) if paths is not None else \
            self.booster_.predict(matrix, pred_contribs=True, approx_contribs=True)
        score = 1.0 / (1.0 + np.exp(-contrib.sum(axis=1, dtype=np.float64)))
        full = np.zeros((contrib.shape[0], self.n_features_in_))
        full[:, self.preprocessor_["kept"]] = contrib[:, :-1]
        return FeatureExplanation(score, full, tuple(self.feature_names_in_))

    def _paths(self) -> PathContributions | None:
        """XGBoost's tree-path contributions from the leaves (:mod:`pipelines.core.xgb_paths`:
        the same numbers, a fraction of the time), built once per booster; None where they
        would not be exact, and XGBoost's own pass is used."""
        cached = getattr(self, "_paths_cache", None)
        if cached is None or cached[0] is not self.booster_:
            cached = (self.booster_, path_contributions(self.booster_))
            self._paths_cache = cached
        return cached[1]

    def save(self, directory: Path) -> dict:
        """Write the model and preprocessor; return ``{file: role}`` for the manifest."""
        self.check_is_fitted()
        directory = Path(directory)
        self.booster_.save_model(directory / self.MODEL_FILE)
        (directory / self.PREPROCESSOR_FILE).write_text(json.dumps(self.preprocessor_))
        return {self.MODEL_FILE: "xgboost model", self.PREPROCESSOR_FILE: "preprocessor"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "XGBoostDetector":
        """Rebuild a fitted detector from a bundle written by :meth:`save`."""
        directory = Path(directory)
        detector = cls._from_manifest(manifest, **overrides)
        detector.booster_ = xgb.Booster(model_file=str(directory / cls.MODEL_FILE))
        detector.booster_.set_param({"nthread": detector.n_jobs})
        detector.preprocessor_ = json.loads((directory / cls.PREPROCESSOR_FILE).read_text())
        detector._paths()  # built with the model (tens of ms), not on its first request
        return detector
