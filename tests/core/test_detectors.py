"""The Detector base and typed explanations, with a toy detector (no module involved)."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.detectors import (BaseDetector, ClassRegionExplanation, FeatureExplanation,
                                      InvalidInputError, NotFittedError, PixelExplanation,
                                      TimeStepExplanation, UnknownDetectorError,
                                      get_detector_class, top_k)


class Mean(BaseDetector):
    """Distance from the training mean; NaN not allowed (the base's default)."""

    name = "mean"

    def __init__(self, *, scale: float = 1.0, widths: tuple = (1, 2)):
        self.scale = scale
        self.widths = widths

    def fit(self, X, y=None, *, feature_names=None):
        X = self._check_input(X, reset=True, feature_names=feature_names)
        self.mean_ = X.mean(axis=0)
        return self

    def score(self, X):
        X = self._check_input(X, reset=False)
        return self.scale * np.abs(X - self.mean_).sum(axis=1)


def test_params_and_repr_come_from_the_signature():
    m = Mean(scale=2.0)
    assert m.get_params() == {"scale": 2.0, "widths": [1, 2]}  # tuples stored as JSON lists
    assert repr(m) == "Mean(scale=2.0, widths=[1, 2])"
    assert m.set_params(scale=3.0).scale == 3.0


def test_fit_learns_names_and_count_and_checks_them_later():
    m = Mean().fit(np.zeros((4, 3)), feature_names=["a", "b", "c"])
    assert m.n_features_in_ == 3 and m.feature_names_in_ == ["a", "b", "c"]
    assert Mean().fit(np.zeros((4, 2))).feature_names_in_ == ["feature_1", "feature_2"]
    with pytest.raises(InvalidInputError, match=r"expected rows of shape \(3,\)"):
        m.score(np.zeros((2, 4)))
    with pytest.raises(InvalidInputError, match="2-D"):
        m.score(np.zeros(3))
    with pytest.raises(InvalidInputError, match="2 feature names for 3"):
        Mean().fit(np.zeros((4, 3)), feature_names=["a", "b"])
    with pytest.raises(InvalidInputError, match="not numeric"):
        m.score([["x", "y", "z"]])


def test_not_fitted_and_non_finite_errors():
    with pytest.raises(NotFittedError):
        Mean().score(np.zeros((1, 3)))
    m = Mean().fit(np.zeros((4, 3)), feature_names=["a", "b", "c"])
    with pytest.raises(InvalidInputError, match=r"first at row 2, feature b"):
        m.score(np.array([[0, 0, 0], [0, np.inf, 0]]))
    with pytest.raises(InvalidInputError, match="NaN"):
        m.score(np.array([[0, np.nan, 0]]))


def test_explanations_check_their_shapes():
    scores = np.zeros(2)
    e = FeatureExplanation(scores, np.array([[0.1, 0.5, 0.2], [3, 1, 2]]), ("a", "b", "c"))
    assert e.top(2).tolist() == [[1, 2], [0, 2]]
    with pytest.raises(ValueError, match="feature names"):
        FeatureExplanation(scores, np.zeros((2, 3)), ("a",))
    ClassRegionExplanation(np.zeros((2, 9)), tuple("abcdefghi"), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="classes"):
        ClassRegionExplanation(np.zeros((2, 3)), tuple("abcdefghi"), np.zeros((2, 8, 8)))
    TimeStepExplanation(scores, np.zeros((2, 30)))
    with pytest.raises(ValueError, match="one entry per row"):
        TimeStepExplanation(scores, np.zeros((3, 30)))
    PixelExplanation(scores, np.zeros((2, 64, 64)))
    with pytest.raises(ValueError, match="3 dimensions"):
        PixelExplanation(scores, np.zeros((2, 64)))


def test_top_k_orders_the_largest_contributions():
    contributions = np.array([[0.1, 0.5, -1.0, 0.3], [2.0, 0.0, 1.0, 3.0]])
    assert top_k(contributions, 3).tolist() == [[1, 3, 0], [3, 0, 2]]


def test_unknown_detector_lists_the_module_models():
    with pytest.raises(UnknownDetectorError, match="sensor/autoencoder, sensor/extra_trees, sensor/xgboost"):
        get_detector_class("sensor", "svm")


class Codes(Mean):
    """Integer codes (3-D, like wafer maps) kept as they are."""

    name = "codes"
    input_ndim = 3
    integer_input = True

    def fit(self, X, y=None, *, feature_names=None):
        self.seen_ = self._check_input(X, reset=True, feature_names=feature_names)
        return self


def test_integer_input_is_kept_without_a_float_copy():
    maps = np.zeros((2, 4, 4), dtype=np.uint8)
    assert Codes().fit(maps).seen_ is maps
    assert Codes().fit(maps.astype(float)).seen_.dtype == np.float64
    with pytest.raises(InvalidInputError, match="infinite"):
        Codes().fit(np.full((2, 4, 4), np.inf))
    assert Mean().fit(np.zeros((4, 3), dtype=np.int64)).mean_.dtype == np.float64
