"""Tree-path contributions from the leaves equal XGBoost's own ``approx_contribs``, bit for bit.

The boosters here are small but cover what the arithmetic depends on: deep trees whose paths
split on one feature twice (credits merged per tree), NaN going the default way, random
forests (several trees per round), a base score other than 0.5, a single-leaf tree. Kinds it
does not cover (dart's tree weights) and a probe that disagrees fall back to XGBoost's pass.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import xgboost as xgb

from pipelines.core import xgb_paths
from pipelines.core.xgb_paths import path_contributions


def data(n: int = 400, features: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + rng.normal(scale=0.5, size=n) > 0.5).astype(int)
    X[rng.random(X.shape) < 0.15] = np.nan
    return X, y


def booster(params: dict, rounds: int, seed: int = 0) -> xgb.Booster:
    X, y = data(seed=seed)
    return xgb.train({"objective": "binary:logistic", "tree_method": "hist", "nthread": 1,
                      "seed": seed, **params}, xgb.DMatrix(X, label=y), rounds)


def own(model: xgb.Booster, matrix: xgb.DMatrix) -> np.ndarray:
    return model.predict(matrix, pred_contribs=True, approx_contribs=True)


def assert_same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.array_equal(a.view(np.int32), b.view(np.int32)), \
        f"{int((a != b).sum())} cells differ, largest by {np.nanmax(np.abs(a - b))}"


@pytest.mark.parametrize("params, rounds", [
    ({"max_depth": 3, "eta": 0.1}, 60),
    ({"max_depth": 6, "eta": 0.3, "colsample_bynode": 0.3}, 40),  # features repeat on paths
    ({"max_depth": 4, "num_parallel_tree": 5, "subsample": 0.7, "colsample_bynode": 0.5}, 1),
    ({"max_depth": 2, "num_parallel_tree": 3, "base_score": 0.2}, 5),
    ({"max_depth": 3, "min_child_weight": 1e6}, 3),  # no split at all: every tree one leaf
])
def test_equal_to_xgboost_bit_for_bit(params, rounds):
    model = booster(params, rounds)
    paths = path_contributions(model)
    assert paths is not None
    X, _ = data(n=1500, seed=1)  # rows the trees never saw, NaN included
    matrix = xgb.DMatrix(X, nthread=1)
    assert_same_bits(paths(matrix), own(model, matrix))
    assert np.array_equal(paths(xgb.DMatrix(X[:1])), own(model, xgb.DMatrix(X[:1])))


def test_repeated_feature_on_a_path_is_covered():
    """The deep booster above does split twice on one feature along some path (so its
    credits there are merged, in path order, as XGBoost adds them)."""
    model = booster({"max_depth": 6, "eta": 0.3, "colsample_bynode": 0.3}, 40)
    trees = json.loads(model.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]

    def repeats(tree, node=0, seen=()):
        if tree["left_children"][node] == -1:
            return False
        f = tree["split_indices"][node]
        return f in seen or any(repeats(tree, child, (*seen, f)) for child in
                                (tree["left_children"][node], tree["right_children"][node]))
    assert any(repeats(t) for t in trees)


def test_a_booster_with_feature_names():
    X, y = data()
    names = [f"s{i}" for i in range(X.shape[1])]
    model = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                      xgb.DMatrix(X, label=y, feature_names=names), 10)
    paths = path_contributions(model)
    assert paths is not None
    matrix = xgb.DMatrix(X, feature_names=names)
    assert_same_bits(paths(matrix), own(model, matrix))


def test_more_rows_than_a_block():
    model = booster({"max_depth": 3}, 20)
    X, _ = data(n=xgb_paths.ROW_BLOCK * 2 + 7, seed=2)
    matrix = xgb.DMatrix(X)
    assert_same_bits(path_contributions(model)(matrix), own(model, matrix))


def test_models_it_does_not_cover_fall_back():
    assert path_contributions(booster({"booster": "dart", "rate_drop": 0.3}, 5)) is None
    X, y = data()
    three = xgb.train({"objective": "multi:softprob", "num_class": 3, "nthread": 1},
                      xgb.DMatrix(X, label=y + (X[:, 2] > 1)), 3)
    assert path_contributions(three) is None


def test_a_probe_that_differs_falls_back(monkeypatch, caplog):
    real = xgb_paths._node_means

    def off_by_one_ulp(tree):
        means = real(tree)
        return [np.nextafter(m, np.float32(np.inf)) for m in means]

    monkeypatch.setattr(xgb_paths, "_node_means", off_by_one_ulp)
    with caplog.at_level(logging.WARNING, logger="pipelines.core.xgb_paths"):
        assert path_contributions(booster({"max_depth": 3}, 20)) is None
    assert "differ from XGBoost" in caplog.text


def test_a_model_file_it_cannot_read_falls_back(monkeypatch, caplog):
    def unknown_layout(tree):
        raise KeyError("split_conditions")

    monkeypatch.setattr(xgb_paths, "_leaf_paths", unknown_layout)
    with caplog.at_level(logging.WARNING, logger="pipelines.core.xgb_paths"):
        assert path_contributions(booster({"max_depth": 3}, 5)) is None
    assert "unavailable" in caplog.text


def test_sensor_detector_uses_it_and_falls_back_to_the_same_answer(monkeypatch):
    from pipelines.core.detectors import get_detector_class
    from pipelines.sensor.examples import synthetic

    X, y = synthetic(n=300)
    detector = get_detector_class("sensor", "xgboost")(n_estimators=30).fit(X, y)
    fast = detector.explain(X[:50])
    assert detector._paths() is not None
    monkeypatch.setattr("pipelines.sensor.detectors.xgboost.path_contributions",
                        lambda booster: None)
    detector.fit(X, y)  # a new booster: the cached paths are dropped with the old one
    assert detector._paths() is None
    slow = detector.explain(X[:50])
    assert np.array_equal(fast.contributions, slow.contributions)
    assert np.array_equal(fast.scores, slow.scores)
