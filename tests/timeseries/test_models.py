"""The five models beyond the contract: the Isolation Forest's node arrays score exactly as
scikit-learn, the torch networks' ONNX exports match torch, the RUL regressor learns RUL, the
end-of-life classifier learns "RUL <= 30"."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.timeseries.detectors.isolation_forest import IsolationForestDetector
from pipelines.timeseries.detectors.lstm_ae import LSTMAutoencoderDetector
from pipelines.timeseries.detectors.patchtst import PatchTSTDetector
from pipelines.core.detectors import InvalidInputError
from pipelines.timeseries.detectors.rul import XGBoostEOLDetector, XGBoostRULDetector
from pipelines.timeseries.examples import synthetic_windows
from pipelines.timeseries.transform import window_features, window_slopes


def test_isolation_forest_arrays_match_scikit_learn():
    X, rul = synthetic_windows(300, seed=1)
    detector = IsolationForestDetector(n_estimators=30, max_samples=128, max_features=0.5
                                       ).fit(X[rul > 60])
    expected = -detector.sklearn_.score_samples(window_features(X))
    np.testing.assert_allclose(detector.score(X), expected, rtol=0, atol=1e-12)
    worn = detector.score(X[rul < 20]).mean()
    assert worn > detector.score(X[rul > 100]).mean()


NETWORKS = [
    (LSTMAutoencoderDetector, {"hidden": 8, "epochs": 2}),
    (LSTMAutoencoderDetector, {"hidden": 8, "epochs": 2, "score_on": "mean_error", "recent": 5}),
    (PatchTSTDetector, {"d_model": 8, "heads": 2, "layers": 1, "epochs": 2}),
    (PatchTSTDetector, {"d_model": 8, "heads": 2, "layers": 1, "epochs": 2,
                        "score_on": "mean_error", "history_windows": 4}),
]


@pytest.mark.parametrize("cls, params", NETWORKS)
def test_torch_and_onnx_agree(cls, params):
    X, _ = synthetic_windows(200, seed=2)
    detector = cls(**params).fit(X)
    np.testing.assert_allclose(detector.errors(X), detector.torch_errors(X), rtol=1e-4, atol=1e-5)
    assert detector.parity_(X) < 1e-4


def _residuals(detector, X):
    """(prediction - readings) per cycle, from the torch module: the autoencoder's whole
    window, the forecaster's horizon."""
    import torch

    with torch.no_grad():
        return detector.module_.inner.residual(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("cls, params", NETWORKS)
def test_what_the_networks_score(cls, params):
    """squared_error: the mean squared error per sensor (the releases before issue 20: the
    autoencoder's whole window, the forecaster's horizon); mean_error: the signed mean error
    per sensor less its mean on the training windows, squared after the history average."""
    X, _ = synthetic_windows(200, seed=2)
    detector = cls(**params).fit(X[:150])
    r = _residuals(detector, X[150:])
    if cls is LSTMAutoencoderDetector:
        r = r[:, -detector.recent:]  # (windows, cycles, sensors)
        cycles = 1
    else:
        cycles = 2  # (windows, sensors, horizon)
    if detector.score_on == "squared_error":
        expected = (r ** 2).mean(axis=cycles)
        np.testing.assert_allclose(detector.errors(X[150:]), expected, atol=1e-5)
        assert detector.error_offset_ == [0.0] * X.shape[2]
    else:
        offset = r.mean(axis=cycles) - detector.errors(X[150:])
        np.testing.assert_allclose(offset, np.tile(detector.error_offset_, (50, 1)), atol=1e-5)
        # centred: the training windows' mean error is 0 per sensor
        np.testing.assert_allclose(detector.errors(X[:150]).mean(axis=0), 0, atol=1e-5)
    explanation = detector.explain(X[150:])
    np.testing.assert_allclose(explanation.contributions.sum(axis=1), explanation.scores)
    assert (explanation.scores >= 0).all()


def test_the_forecaster_averages_its_bias_over_each_machines_last_windows():
    X, _ = synthetic_windows(40, seed=7)
    detector = PatchTSTDetector(d_model=8, heads=2, layers=1, epochs=1,
                                score_on="mean_error", history_windows=3).fit(X)
    assert detector.uses_machines
    e = detector.errors(X[:7])
    machines = np.array(["a"] * 4 + ["b"] * 3)
    bias = np.array([e[0], e[0] + e[1], e[0] + e[1] + e[2], e[1] + e[2] + e[3],
                     e[4], e[4] + e[5], e[4] + e[5] + e[6]]) / 3
    expected = (bias ** 2).mean(axis=1)
    np.testing.assert_allclose(detector.score(X[:7], machines=machines), expected, rtol=1e-6)
    # without machine ids each window is a machine of its own: a third of its error counts
    np.testing.assert_allclose(detector.score(X[:7]), ((e / 3) ** 2).mean(axis=1), rtol=1e-6)
    later = X[:7].copy()
    later[3] += 5.0  # a later window never moves an earlier one's score
    np.testing.assert_allclose(detector.score(later, machines=machines)[:3], expected[:3],
                               rtol=1e-6)
    with pytest.raises(InvalidInputError, match="machine ids"):
        detector.score(X[:7], machines=machines[:5])
    with pytest.raises(ValueError, match="score_on"):
        PatchTSTDetector(score_on="median", epochs=1).fit(X)


def test_patchtst_refuses_a_window_too_short_for_its_patches():
    X, _ = synthetic_windows(20, steps=6, seed=3)
    with pytest.raises(ValueError, match="leaves no context"):
        PatchTSTDetector(patch=5, horizon=5, epochs=1).fit(X)


def test_rul_regressor_learns_and_its_score_is_the_deficit():
    X, rul = synthetic_windows(600, seed=4)
    detector = XGBoostRULDetector(n_estimators=80, cap=125).fit(X[:400], rul[:400])
    predicted = detector.predict_rul(X[400:])
    assert np.corrcoef(predicted, np.minimum(rul[400:], 125))[0, 1] > 0.6
    np.testing.assert_allclose(detector.score(X[400:]), 125 - predicted)
    explanation = detector.explain(X[400:410])
    np.testing.assert_allclose(explanation.scores, detector.score(X[400:410]), atol=1e-3)
    assert detector.score_range == (-np.inf, 125.0)


def test_end_of_life_classifier_learns_the_label_and_scores_probabilities():
    X, rul = synthetic_windows(600, seed=5)
    detector = XGBoostEOLDetector(n_estimators=80).fit(X[:400], rul[:400])
    p = detector.score(X[400:])
    assert ((p >= 0) & (p <= 1)).all()
    late, early = p[rul[400:] <= 30], p[rul[400:] > 60]
    assert late.mean() > 0.5 > early.mean()
    explanation = detector.explain(X[400:410])
    np.testing.assert_allclose(explanation.scores, p[:10], atol=1e-6)
    worn = X[400:][rul[400:] <= 10][:5]
    assert (detector.explain(worn).contributions.sum(axis=1) > 0).all()  # pushes towards EOL
    hard = XGBoostEOLDetector(n_estimators=80, label_scale=0).fit(X[:400], rul[:400])
    assert not np.allclose(hard.score(X[400:]), p, atol=1e-3)  # soft targets by default
    with pytest.raises(InvalidInputError, match="both sides"):
        XGBoostEOLDetector(n_estimators=5).fit(X[:50], np.full(50, 100.0))


@pytest.mark.parametrize("cls", [XGBoostRULDetector, XGBoostEOLDetector])
def test_boosters_take_the_history_slopes_and_check_them(cls, tmp_path):
    X, rul = synthetic_windows(300, seed=6)
    rng = np.random.default_rng(6)  # a history that knows the wear better than the window
    history = np.repeat((150 - rul)[:, None] / 100, X.shape[2], axis=1) \
        + rng.normal(0, 0.05, (300, X.shape[2]))
    detector = cls(n_estimators=40).fit(X, rul, history=history)
    with_history = detector.score(X, history=history)
    assert not np.allclose(with_history, detector.score(X))  # the history is used
    # without it, the window's own slope stands in
    np.testing.assert_allclose(detector.score(X), detector.score(X, history=window_slopes(X)))
    np.testing.assert_allclose(detector.explain(X[:8], history=history[:8]).scores,
                               with_history[:8], atol=1e-4)
    assert len(detector.explain(X[:8]).feature_names) == X.shape[2]
    with pytest.raises(InvalidInputError, match="one slope per sensor"):
        detector.score(X, history=history[:, :2])
    bad = history.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InvalidInputError, match="non-finite"):
        detector.score(X, history=bad)


def test_a_booster_with_another_feature_count_is_refused_not_crashed(tmp_path):
    X, rul = synthetic_windows(200, seed=8)
    detector = XGBoostEOLDetector(n_estimators=10).fit(X, rul)
    old = xgb_booster_without_history(X, rul)
    detector._set_boosters(old)
    with pytest.raises(InvalidInputError, match="retrain the release"):
        detector.score(X)
    with pytest.raises(InvalidInputError, match="retrain the release"):
        detector.explain(X[:3])


def xgb_booster_without_history(X, rul):
    """A booster trained on the six window features only (a release from before history)."""
    import xgboost as xgb

    model = xgb.XGBRegressor(n_estimators=5, objective="binary:logistic")
    model.fit(window_features(X), (rul <= 30).astype(float))
    return model.get_booster()
