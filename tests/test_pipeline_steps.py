"""Pipeline steps on tiny frames: preprocessing, thresholds, metrics, folds, detectors, bundles."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.artifacts import BundleError, load_bundle, save_bundle
from pipelines.detectors.base import REGISTRY, UnknownDetectorError, get_detector_class, top_k
from pipelines.evaluate import (binary_metrics, cross_validate, false_alarm_rate,
                                threshold_at_false_alarm_rate, time_split)
from pipelines.samples import fit_sample_model, sensor_sample
from pipelines.schema import N_SENSORS, SENSOR_COLUMNS
from pipelines.transform.sensor import feature_names, fit_preprocessor, impute, standardise


def synthetic(n: int = 240, fail_rate: float = 0.15, seed: int = 0):
    """Rows of 590 sensors where fails shift a handful of sensors; some sensors mostly missing."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_SENSORS))
    y = (rng.random(n) < fail_rate).astype(int)
    X[y == 1, :5] += 2.5
    X[:, 100] = 7.0  # constant
    X[rng.random(n) < 0.8, 200] = np.nan  # mostly missing
    X[rng.random(n) < 0.05, 10] = np.nan
    return X, y


def test_preprocessor_drops_missing_and_constant_and_imputes_with_train_medians():
    X, _ = synthetic()
    params = fit_preprocessor(X, max_missing=0.5)
    assert "Sensor-201" in params["dropped_missing"] and "Sensor-101" in params["dropped_constant"]
    assert len(params["kept"]) == N_SENSORS - 2
    assert "Sensor-101" not in feature_names(params)
    test = np.full((1, N_SENSORS), np.nan)
    imputed = impute(params, test)
    np.testing.assert_allclose(imputed[0], params["median"])
    assert json.loads(json.dumps(params)) == params  # plain JSON
    z = standardise(params, impute(params, X))
    assert abs(float(z.mean())) < 1e-3


def test_preprocessor_statistics_come_only_from_rows_given():
    X, _ = synthetic()
    a = fit_preprocessor(X[:100])
    b = fit_preprocessor(np.vstack([X[:100], X[100:] + 100.0]))
    assert a["median"] != b["median"]  # would be equal if it looked beyond its rows


def test_preprocessor_rejects_wrong_width():
    with pytest.raises(ValueError, match="590"):
        fit_preprocessor(np.zeros((3, 10)))


def test_threshold_meets_the_false_alarm_target():
    normal = np.arange(1000, dtype=float)
    threshold = threshold_at_false_alarm_rate(normal, 0.05)
    assert false_alarm_rate(normal, threshold) == pytest.approx(0.05)
    assert false_alarm_rate(normal, threshold_at_false_alarm_rate(normal, 0.0001)) == 0.0
    with pytest.raises(ValueError):
        threshold_at_false_alarm_rate(normal, 1.5)


def test_binary_metrics_perfect_and_inverted():
    y = np.array([0, 0, 0, 1, 1])
    good = binary_metrics(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]), 0.5)
    assert good["roc_auc"] == 1.0 and good["f1"] == 1.0 and good["balanced_accuracy"] == 1.0
    bad = binary_metrics(y, np.array([0.9, 0.8, 0.7, 0.2, 0.1]), 0.5)
    assert bad["roc_auc"] == 0.0 and bad["recall"] == 0.0


class Spy:
    """A detector that remembers which rows it was fitted on (by a row-id sensor)."""

    name = "spy"
    fitted_on: list[set] = []

    def fit(self, X, y=None):
        self.rows_ = set(X[:, 0].astype(int))
        Spy.fitted_on.append(self.rows_)
        self.scores_ = dict(zip(X[:, 0].astype(int), y))
        return self

    def score(self, X):
        assert not set(X[:, 0].astype(int)) & self.rows_, "scored a row it was fitted on"
        return X[:, 1]


def test_cross_validation_never_scores_a_row_it_fitted_on():
    rng = np.random.default_rng(1)
    X = np.c_[np.arange(100), rng.random(100)]
    y = (np.arange(100) % 5 == 0).astype(int)
    Spy.fitted_on = []
    result = cross_validate(Spy, X, y, n_splits=5, n_repeats=2, target_far=0.1)
    assert len(Spy.fitted_on) == 10 and all(len(rows) == 80 for rows in Spy.fitted_on)
    assert result.normal_scores.size == 2 * int((y == 0).sum())
    assert {"roc_auc", "pr_auc", "roc_auc_std"} <= set(result.metrics)


def test_time_split_trains_on_the_earliest_rows():
    rng = np.random.default_rng(2)
    X = np.c_[np.arange(200), rng.random(200)]
    y = (np.arange(200) % 4 == 0).astype(int)
    order = np.arange(200)[::-1]  # row 199 is the earliest
    Spy.fitted_on = []
    metrics = time_split(Spy, X, y, order, train_fraction=0.75)
    assert metrics["n_train"] == 150 and metrics["n_test"] == 50
    assert Spy.fitted_on[-1] == set(range(50, 200))


FAST_PARAMS = {"xgboost": {"n_estimators": 30}, "autoencoder": {"epochs": 3, "hidden": (16, 4)}}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_detector_round_trips(name, tmp_path):
    X, y = synthetic()
    cls = get_detector_class(name)
    detector = cls(**FAST_PARAMS[name]).fit(X, y)
    scores = detector.score(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    explained, contributions = detector.explain(X[:7])
    np.testing.assert_allclose(explained, scores[:7], rtol=1e-5, atol=1e-6)
    assert contributions.shape == (7, N_SENSORS)
    assert (contributions[:, 100] == 0).all()  # dropped sensors contribute nothing
    manifest = save_bundle(detector, tmp_path / name, module="sensor", manifest_fields={
        "name": name, "threshold": {"value": 0.5}, "feature_schema": {"names": SENSOR_COLUMNS}})
    assert set(manifest["files"]) >= {"preprocessor.json"}
    loaded, _ = load_bundle(tmp_path / name, SENSOR_COLUMNS)
    np.testing.assert_allclose(loaded.score(X), scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loaded.explain(X[:7])[1], contributions, rtol=1e-5, atol=1e-6)


def test_xgboost_learns_the_shifted_sensors():
    X, y = synthetic(n=400)
    detector = get_detector_class("xgboost")(n_estimators=60).fit(X, y)
    assert binary_metrics(y, detector.score(X), 0.5)["roc_auc"] > 0.9
    top = np.argsort(-detector.explain(X[y == 1])[1].mean(axis=0))[:5]
    assert set(top) & set(range(5))


def test_xgboost_smote_and_missing_labels():
    X, y = synthetic()
    cls = get_detector_class("xgboost")
    assert cls(imbalance="smote", n_estimators=10).fit(X, y).score(X).shape == (len(X),)
    with pytest.raises(ValueError, match="supervised"):
        cls().fit(X)


def test_autoencoder_torch_and_onnx_agree():
    X, y = synthetic()
    X_missing = X.copy()
    X_missing[::3, 20] = np.nan
    detector = get_detector_class("autoencoder")(epochs=5).fit(X, y)
    np.testing.assert_allclose(detector.errors(X_missing), detector.torch_errors(X_missing),
                               atol=1e-4, rtol=0)
    shares = detector.explain(X[:4])[1]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-5)


def test_autoencoder_fits_on_passing_rows_only():
    X, y = synthetic()
    detector = get_detector_class("autoencoder")(epochs=2, hidden=(8,)).fit(X, y)
    expected = fit_preprocessor(X[y == 0])
    assert detector.preprocessor_["median"] == expected["median"]


def test_tampered_bundle_is_refused(tmp_path):
    X, y = synthetic()
    detector = get_detector_class("xgboost")(n_estimators=5).fit(X, y)
    save_bundle(detector, tmp_path, module="sensor",
                manifest_fields={"feature_schema": {"names": SENSOR_COLUMNS}})
    (tmp_path / "preprocessor.json").write_text("{}")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(tmp_path)


def test_top_k_orders_the_largest_contributions():
    contributions = np.array([[0.1, 0.5, -1.0, 0.3], [2.0, 0.0, 1.0, 3.0]])
    assert top_k(contributions, 3).tolist() == [[1, 3, 0], [3, 0, 2]]


def test_unknown_detector_lists_valid_names():
    with pytest.raises(UnknownDetectorError, match="autoencoder, xgboost"):
        get_detector_class("svm")


def test_sample_is_generated_not_copied():
    X, y = synthetic()
    model = fit_sample_model(X, y, n_components=5)
    assert json.loads(json.dumps(model)) == model
    sample = sensor_sample(model, n_rows=50, seed=3, shifted_fraction=0.5)
    assert list(sample.columns) == ["Wafer", *SENSOR_COLUMNS] and len(sample) == 50
    values = sample[SENSOR_COLUMNS].to_numpy()
    assert np.isnan(values[:, 200]).mean() > 0.5  # mostly-missing sensors stay mostly missing
    assert (values[:, 100] == 7.0).all()  # constant sensors keep their value
    rows = {tuple(np.round(r, 5)) for r in X}
    assert not any(tuple(r) in rows for r in values)
    # shifted wafers move along the fail direction (sensors 0..4 are higher for fails)
    assert np.nanmean(values[:, :5]) > 0.3
