"""Sensor pipeline steps on tiny frames: preprocessing, detectors, samples."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.core.detectors import get_detector_class
from pipelines.core.evaluation import binary_metrics
from pipelines.sensor.examples import synthetic
from pipelines.sensor.samples import fit_sample_model, sensor_sample
from pipelines.sensor.schema import N_SENSORS, SENSOR_COLUMNS
from pipelines.sensor.transform import fit_preprocessor, impute, standardise, training_range


def test_preprocessor_drops_missing_and_constant_and_imputes_with_train_medians():
    X, _ = synthetic()
    params = fit_preprocessor(X, SENSOR_COLUMNS, max_missing=0.5)
    assert "Sensor-201" in params["dropped_missing"] and "Sensor-101" in params["dropped_constant"]
    assert len(params["kept"]) == N_SENSORS - 2
    assert 100 not in params["kept"]
    test = np.full((1, N_SENSORS), np.nan)
    imputed = impute(params, test)
    np.testing.assert_allclose(imputed[0], params["median"])
    assert json.loads(json.dumps(params)) == params  # plain JSON
    z = standardise(params, impute(params, X))
    assert abs(float(z.mean())) < 1e-3
    low, high = training_range(params, N_SENSORS)
    assert np.isnan(low[100]) and (low[params["kept"]] <= high[params["kept"]]).all()


def test_preprocessor_statistics_come_only_from_rows_given():
    X, _ = synthetic()
    a = fit_preprocessor(X[:100])
    b = fit_preprocessor(np.vstack([X[:100], X[100:] + 100.0]))
    assert a["median"] != b["median"]  # would be equal if it looked beyond its rows


def test_preprocessor_follows_the_matrix_it_is_given():
    """No global sensor count: 12 columns are 12 features, named or numbered."""
    X, _ = synthetic(n_features=300)
    params = fit_preprocessor(X[:, :12])
    assert len(params["kept"]) == 12 and len(params["median"]) == 12
    with pytest.raises(ValueError, match="feature names"):
        fit_preprocessor(X[:, :12], ["a", "b"])
    with pytest.raises(ValueError, match="matrix"):
        fit_preprocessor(np.zeros(5))


def test_xgboost_learns_the_shifted_sensors():
    X, y = synthetic(n=400)
    detector = get_detector_class("sensor", "xgboost")(n_estimators=60).fit(
        X, y, feature_names=SENSOR_COLUMNS)
    assert binary_metrics(y, detector.score(X), 0.5)["roc_auc"] > 0.9
    explanation = detector.explain(X[y == 1])
    top = np.argsort(-explanation.contributions.mean(axis=0))[:5]
    assert set(top) & set(range(5))
    assert explanation.feature_names[0] == "Sensor-1"
    assert (explanation.contributions[:, 100] == 0).all()  # dropped sensors contribute nothing


def test_xgboost_smote_and_missing_labels():
    X, y = synthetic()
    cls = get_detector_class("sensor", "xgboost")
    assert cls(imbalance="smote", n_estimators=10).fit(X, y).score(X).shape == (len(X),)
    with pytest.raises(ValueError, match="supervised"):
        cls().fit(X)


def test_autoencoder_torch_and_onnx_agree():
    X, y = synthetic()
    X_missing = X.copy()
    X_missing[::3, 20] = np.nan
    detector = get_detector_class("sensor", "autoencoder")(epochs=5).fit(X, y)
    np.testing.assert_allclose(detector.errors(X_missing), detector.torch_errors(X_missing),
                               atol=1e-4, rtol=0)
    shares = detector.explain(X[:4]).contributions
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-5)


def test_autoencoder_fits_on_passing_rows_only():
    X, y = synthetic()
    detector = get_detector_class("sensor", "autoencoder")(epochs=2, hidden=(8,)).fit(X, y)
    expected = fit_preprocessor(X[y == 0])
    assert detector.preprocessor_["median"] == expected["median"]


def test_sample_is_generated_not_copied():
    """No generated row equals a training row; compared on the observed cells only, since a
    row holding NaN never compares equal and would prove nothing."""
    X, y = synthetic()
    X = np.where(np.isnan(X), 0.0, X)  # training rows fully observed, so equality can happen
    model = fit_sample_model(X, y, n_components=5)
    assert json.loads(json.dumps(model)) == model
    sample = sensor_sample(model, n_rows=50, seed=3, shifted_fraction=0.5)
    assert list(sample.columns) == ["Wafer", *SENSOR_COLUMNS] and len(sample) == 50
    values = sample[SENSOR_COLUMNS].to_numpy()
    assert (values[:, 100] == 7.0).all()  # constant sensors keep their value
    observed = ~np.isnan(values)
    for row, seen in zip(values, observed):
        close = np.isclose(np.round(X, 5)[:, seen], row[seen], rtol=0, atol=1e-9).all(axis=1)
        assert not close.any(), "a generated wafer repeats a training wafer"
    # shifted wafers move along the fail direction (sensors 0..4 are higher for fails)
    assert np.nanmean(values[:, :5]) > 0.3


def test_sample_keeps_mostly_missing_sensors_missing():
    X, y = synthetic()
    sample = sensor_sample(fit_sample_model(X, y, n_components=5), n_rows=200, seed=3)
    assert sample["Sensor-201"].isna().mean() > 0.5


def test_extra_trees_walk_matches_scikit_learn_and_contributions_add_up():
    from sklearn.ensemble import ExtraTreesClassifier

    X, y = synthetic(n=300)
    detector = get_detector_class("sensor", "extra_trees")(n_estimators=25, max_features=0.2)
    detector.fit(X, y, feature_names=SENSOR_COLUMNS)
    assert 200 in detector.preprocessor_["indicators"]  # mostly missing: dropped, yet indicated
    assert 100 not in detector.preprocessor_["indicators"]  # never missing: no indicator
    forest = ExtraTreesClassifier(n_estimators=25, max_features=0.2, min_samples_leaf=2,
                                  class_weight="balanced_subsample", random_state=0)
    forest.fit(detector._features(X), y)
    np.testing.assert_allclose(detector.score(X), forest.predict_proba(detector._features(X))[:, 1],
                               rtol=0, atol=1e-12)
    explanation = detector.explain(X[:50])
    bias = detector.trees_["value"][detector.trees_["roots"]].mean()
    np.testing.assert_allclose(explanation.contributions.sum(axis=1) + bias, explanation.scores,
                               atol=1e-12)
    top = np.argsort(-explanation.contributions[y[:50] == 1].mean(axis=0))[:5]
    assert set(top) & set(range(5))  # the shifted sensors drive the fails


# -- training rows: canonical hashes, profile, drift ----------------------------------------
from pipelines.core.rowhash import (canonical_codes, in_sample, key_columns,  # noqa: E402
                                     row_hashes, row_keys)
from pipelines.sensor.rows import drift, training_profile  # noqa: E402


def test_row_hash_ignores_how_numbers_are_written():
    written = [["0.1", "2543.1", "", "-0.0", "1e-7", "123456789", "3.14159265"],
               ["1e-1", "2543.100", "nan", "0", "0.0000001", "1.23456789e8", "3.141593"],
               [".10000001", "2.5431E3", "NaN", "0.00", "1.0e-07", "123457000", "3.1415926"]]
    rows = np.array([[float(v) if v else np.nan for v in r] for r in written])
    hashes = row_hashes(rows)
    assert hashes.dtype == np.uint64 and len(set(hashes.tolist())) == 1
    different = rows[:1].copy()
    different[0, 1] = 2543.2  # a change in the 5th significant digit is a different row
    assert row_hashes(different)[0] != hashes[0]
    moved = rows[:1, ::-1]  # the same values in other columns are a different row
    assert row_hashes(moved)[0] != hashes[0]
    assert (canonical_codes(np.array([[9.9999996, -9.9999996]])) ==
            canonical_codes(np.array([[10.0, -10.0]]))).all()  # rounding that carries a digit


def test_in_sample_finds_training_rows_among_new_ones():
    """Training values carry 4 decimals (as SECOM's do); uploads may write them in any format
    that keeps those digits (Excel's 15 digits, scientific notation)."""
    X, _ = synthetic(n=200)
    X = np.round(X, 4)
    excel = np.array([[float(f"{v:.15g}") for v in row] for row in X[50:55] * 3.0]) / 3.0
    scientific = np.array([[float(f"{v:.7e}") for v in row] for row in X[60:65]])
    batch = np.vstack([X[:30] + 0.001, X[10:20], excel, scientific])
    found = in_sample(batch, np.unique(row_hashes(X)))
    assert found.tolist() == [False] * 30 + [True] * 20
    columns = key_columns(X)
    keyed = in_sample(batch, np.unique(row_hashes(X)), (columns, row_keys(X, columns)))
    assert keyed.tolist() == found.tolist()


def test_in_sample_key_is_only_a_first_test():
    """A row that matches a training row in the key columns but not elsewhere (a near miss)
    is not reported; one that matches everywhere is, however its key columns are chosen."""
    X, _ = synthetic(n=200)
    X = np.round(X, 4)
    columns = key_columns(X)
    assert len(columns) == 8 and np.all(np.diff(columns) > 0)
    keys = (columns, row_keys(X, columns))
    hashes = np.unique(row_hashes(X))
    other = next(j for j in range(X.shape[1]) if j not in columns)
    near = X[:3].copy()
    near[:, other] += 0.001  # same key, different row
    assert np.isin(row_keys(near, columns), keys[1]).all()
    assert not in_sample(near, hashes, keys).any() and not in_sample(near, hashes).any()
    moved = X[3:5].copy()
    moved[:, columns[0]] += 0.001  # a different key: not a training row either
    assert not in_sample(moved, hashes, keys).any()
    assert in_sample(np.vstack([near, X[5:7]]), hashes, keys).tolist() == [False] * 3 + [True] * 2


def test_training_profile_and_drift():
    X, _ = synthetic(n=400)
    profile = training_profile(X, SENSOR_COLUMNS)
    assert set(profile) == {"features", "p01", "p99", "median", "missing_rate"}
    assert json.loads(json.dumps(profile)) == profile  # JSON-safe
    assert profile["p01"][0] == pytest.approx(np.nanquantile(X[:, 0], 0.01))
    assert profile["missing_rate"][200] == pytest.approx(np.isnan(X[:, 200]).mean())
    same = drift(profile, X)
    assert 0.01 < same["share_outside"] < 0.03  # 1% below p01 and 1% above p99, by definition
    assert same["share_imputed"] == pytest.approx(np.isnan(X).mean())
    shifted = X.copy()
    shifted[:, 7] += 100.0
    shifted[:, 9] = np.nan
    report = drift(profile, shifted)
    assert report["top_drifted"][0]["sensor"] == "Sensor-8"
    assert report["top_drifted"][0]["share_outside"] == 1.0
    assert report["top_drifted"][0]["train_p99"] == profile["p99"][7]
    assert report["top_drifted"][0]["median"] == pytest.approx(np.nanmedian(shifted[:, 7]))
    assert len(report["top_drifted"]) <= 5 and report["share_imputed"] > same["share_imputed"]
    assert json.loads(json.dumps(report)) == report
    # chunk-wise: the same answer one row at a time as all at once
    import pipelines.sensor.rows as rows_module
    chunk, rows_module.CHUNK_ROWS = rows_module.CHUNK_ROWS, 7
    try:
        assert drift(profile, shifted) == report
    finally:
        rows_module.CHUNK_ROWS = chunk


def test_column_medians_match_numpy_nanmedian_with_missing_and_empty_columns():
    import warnings

    from pipelines.sensor.rows import column_medians
    rng = np.random.default_rng(5)
    X = rng.normal(size=(101, 40))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 3] = np.nan  # never observed
    X[:100, 4] = np.nan  # one value
    X[:, 5] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(X, axis=0)
    np.testing.assert_allclose(column_medians(X), expected, equal_nan=True)
    even = X[:100, [0, 1, 2, 5]]  # even counts: the mean of the two middle values
    np.testing.assert_allclose(column_medians(even), np.nanmedian(even, axis=0))
