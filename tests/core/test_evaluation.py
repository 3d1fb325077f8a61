"""Thresholds, metrics per task and the protocols, on tiny arrays."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.evaluation import (binary_metrics, cross_validate, grouped, multiclass_metrics,
                                       regression_metrics, stratified, time_ordered, time_split)
from pipelines.core.thresholds import (false_alarm_curve, false_alarm_rate, rate_on_curve,
                                       score_quantiles, threshold_at_false_alarm_rate)


def test_threshold_meets_the_false_alarm_target():
    normal = np.arange(1000, dtype=float)
    threshold = threshold_at_false_alarm_rate(normal, 0.05)
    assert false_alarm_rate(normal, threshold) == pytest.approx(0.05)
    assert false_alarm_rate(normal, threshold_at_false_alarm_rate(normal, 0.0001)) == 0.0
    with pytest.raises(ValueError):
        threshold_at_false_alarm_rate(normal, 1.5)
    with pytest.raises(ValueError):
        threshold_at_false_alarm_rate(np.array([]), 0.05)


def test_false_alarm_curve_reads_like_the_quantiles():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=5000)
    curve = false_alarm_curve(score_quantiles(normal))
    assert curve["rates"][0] == 1.0 and curve["rates"][-1] == 0.0
    for t in (-1.0, 0.0, 1.0, 1.645):
        assert rate_on_curve(curve, t) == pytest.approx(false_alarm_rate(normal, t), abs=0.01)
    assert rate_on_curve(curve, -100) == 1.0 and rate_on_curve(curve, 100) == 0.0
    assert rate_on_curve(curve, curve["thresholds"][-1]) == 0.0
    with pytest.raises(ValueError):
        false_alarm_curve([0.5])



def test_the_curve_goes_through_the_measured_false_alarm_rate():
    """At the threshold training chose, the curve gives the rate measured there (not the
    quantiles' approximation), and it never rises."""
    rng = np.random.default_rng(1)
    normal = rng.normal(size=168)  # few scores: the quantile curve is off by a fraction
    threshold = threshold_at_false_alarm_rate(normal, 0.05)
    measured = false_alarm_rate(normal, threshold)  # 8 of 168 = 4.76%
    plain = false_alarm_curve(score_quantiles(normal))
    assert abs(rate_on_curve(plain, threshold) - measured) > 1e-4
    curve = false_alarm_curve(score_quantiles(normal), (threshold, measured))
    assert rate_on_curve(curve, threshold) == measured
    assert np.all(np.diff(curve["rates"]) <= 0) and np.all(np.diff(curve["thresholds"]) >= 0)
    assert curve["rates"][0] == 1.0 and curve["rates"][-1] == 0.0
    # a measured point the quantiles disagree with: the points on its wrong side go
    bent = false_alarm_curve([0.0, 1.0, 2.0, 3.0], (1.5, 0.9))
    assert bent["thresholds"] == [0.0, 1.5, 2.0, 3.0]
    assert bent["rates"] == pytest.approx([1.0, 0.9, 1 / 3, 0.0])


def test_every_released_model_gives_its_measured_figure_at_the_default_threshold():
    """One figure per threshold: what training measured on normal validation data, where it
    recorded it; the target the threshold was chosen for stays the target."""
    import json

    from pipelines.core.locations import artifacts_dir
    from pipelines.core.predictor import LoadedModel
    from pipelines.core.thresholds import measured_false_alarm_rate

    seen = 0
    for path in sorted(artifacts_dir({}).glob("*/*/manifest.json")):
        manifest = json.loads(path.read_text())
        section = manifest.get("threshold", {})
        if "normal_score_quantiles" not in section:
            continue  # the wafer-map review level is no false-alarm threshold
        model = LoadedModel(manifest["model"], None, manifest)
        figure = model.describe()["false_alarm_rate"]
        assert figure == model.false_alarm_rate(model.threshold)
        measured = measured_false_alarm_rate(section)
        if measured is not None:
            assert figure == measured
            seen += 1
        assert model.describe()["target_far"] == section["target_false_alarm_rate"]
    assert seen >= 7  # inspection (2) and time series (5) record the measured rate

def test_binary_metrics_perfect_and_inverted():
    y = np.array([0, 0, 0, 1, 1])
    good = binary_metrics(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]), 0.5)
    assert good["roc_auc"] == 1.0 and good["f1"] == 1.0 and good["balanced_accuracy"] == 1.0
    bad = binary_metrics(y, np.array([0.9, 0.8, 0.7, 0.2, 0.1]), 0.5)
    assert bad["roc_auc"] == 0.0 and bad["recall"] == 0.0


def test_multiclass_metrics():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    m = multiclass_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["per_class"]["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                   "support": 2}
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 0, 2]]
    assert m["macro_f1"] == pytest.approx(np.mean([1.0, 2 / 3, 0.8]))


def test_regression_metrics():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3)) and m["mae"] == pytest.approx(2 / 3)


class Spy:
    """A detector that remembers which rows it was fitted on (column 0 holds the row id)."""

    fitted_on: list[set] = []

    def fit(self, X, y=None):
        self.rows_ = set(X[:, 0].astype(int))
        Spy.fitted_on.append(self.rows_)
        return self

    def score(self, X):
        assert not set(X[:, 0].astype(int)) & self.rows_, "scored a row it was fitted on"
        return X[:, 1]


def rows(n=100, seed=1):
    rng = np.random.default_rng(seed)
    return np.c_[np.arange(n), rng.random(n)], (np.arange(n) % 5 == 0).astype(int)


def test_cross_validation_never_scores_a_row_it_fitted_on():
    X, y = rows()
    Spy.fitted_on = []
    result = cross_validate(Spy, X, y, splitter=stratified(5, n_repeats=2), target_far=0.1)
    assert len(Spy.fitted_on) == 10 and all(len(r) == 80 for r in Spy.fitted_on)
    assert result.normal_scores.size == 2 * int((y == 0).sum())
    assert {"roc_auc", "pr_auc", "roc_auc_std", "roc_auc_pooled"} <= set(result.metrics)
    assert result.metrics["protocol"].startswith("repeated stratified 5-fold x 2")


def test_grouped_split_keeps_each_machine_in_one_fold():
    X, y = rows(120)
    machines = np.repeat(np.arange(12), 10)
    Spy.fitted_on = []
    cross_validate(Spy, X, y, splitter=grouped(4), groups=machines, target_far=0.1)
    for fitted in Spy.fitted_on:
        held_out = set(range(120)) - fitted
        assert {m for m in machines[list(fitted)]}.isdisjoint(machines[list(held_out)])
    with pytest.raises(ValueError, match="groups"):
        list(grouped(4)(X, y, None))


def test_time_ordered_split_trains_on_the_past_only():
    X, y = rows(100)
    order = np.arange(100)[::-1]  # row 99 is the earliest
    for _, train, test in time_ordered(4)(X, y, order):
        assert order[train].max() < order[test].min()
    result = cross_validate(Spy, X, y, splitter=time_ordered(4), groups=order, target_far=0.1)
    assert result.metrics["protocol"].startswith("time-ordered")


def test_regression_and_multiclass_tasks():
    X, _ = rows(60)
    y = X[:, 1] * 3

    class Mean:
        def fit(self, X, y):
            self.mean_ = y.mean()
            return self

        def score(self, X):
            return np.full(len(X), self.mean_)

    result = cross_validate(Mean, X, y, task="regression", splitter=grouped(3),
                            groups=np.arange(60) % 6)
    assert result.threshold is None and result.metrics["rmse"] > 0

    classes = (np.arange(60) % 3)

    class Prior:
        def fit(self, X, y):
            self.p_ = np.bincount(y, minlength=3) / len(y)
            return self

        def score(self, X):
            return np.tile(self.p_, (len(X), 1))

    result = cross_validate(Prior, X, classes, task="multiclass", splitter=stratified(3))
    assert 0 <= result.metrics["macro_f1"] <= 1
    with pytest.raises(ValueError, match="task"):
        cross_validate(Prior, X, classes, task="ranking")


def test_time_split_trains_on_the_earliest_rows():
    X, y = rows(200, seed=2)
    y = (np.arange(200) % 4 == 0).astype(int)
    order = np.arange(200)[::-1]
    Spy.fitted_on = []
    metrics = time_split(Spy, X, y, order, train_fraction=0.75, unit="wafers")
    assert metrics["n_train"] == 150 and metrics["n_test"] == 50
    assert Spy.fitted_on[-1] == set(range(50, 200))
    assert "of wafers by timestamp" in metrics["protocol"]


# -- bootstrap, pooled metrics, rolling origin, the selection rule ----------------------------
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from pipelines.core.evaluation import (Bootstrap, choose_model, cross_validate_binary,  # noqa: E402
                                       origins, ranking_metrics, rolling_origin)


def test_weighted_ranking_metrics_match_scikit_learn_with_ties_and_weights():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.2).astype(int)
    scores = np.round(rng.random(300) + 0.3 * y, 1)  # many ties
    weights = rng.integers(0, 4, size=(5, 300)).astype(float)
    roc, ap = ranking_metrics(y, scores, weights)
    for k in range(5):
        assert roc[k] == pytest.approx(roc_auc_score(y, scores, sample_weight=weights[k]))
        assert ap[k] == pytest.approx(average_precision_score(y, scores, sample_weight=weights[k]))
    roc, ap = ranking_metrics(np.zeros(4), np.arange(4.0), np.ones((1, 4)))
    assert np.isnan(roc[0])  # one class only: undefined, not a number


def test_cluster_bootstrap_draws_whole_clusters():
    clusters = np.repeat([10, 20, 30, 40], [1, 2, 3, 4])
    w = Bootstrap(n_resamples=200, seed=1).weights(len(clusters), clusters)
    assert w.shape == (200, 10)
    for start, size in ((0, 1), (1, 2), (3, 3), (6, 4)):  # equal weight within a cluster
        assert (w[:, start:start + size] == w[:, [start]]).all()
    assert (w[:, [0, 1, 3, 6]].sum(axis=1) == 4).all()  # 4 clusters drawn per resample
    same = Bootstrap(n_resamples=200, seed=1).weights(len(clusters), clusters)
    assert (same == w).all()  # paired comparisons rely on identical resamples
    assert Bootstrap().interval(np.arange(101.0)) == [2.5, 97.5]


def test_day_blocked_cv_keeps_days_whole_and_reports_intervals():
    X, y = rows(120)
    days = np.repeat(np.arange(24), 5)
    Spy.fitted_on = []
    result = cross_validate_binary(Spy, X, y, splitter=grouped(4, n_repeats=2, group_name="day"),
                                   groups=days, clusters=days, cluster_unit="days",
                                   target_far=0.1, bootstrap=Bootstrap(200), label="day-blocked")
    assert len(Spy.fitted_on) == 8
    for fitted in Spy.fitted_on:
        held_out = set(range(120)) - fitted
        assert set(days[list(fitted)]).isdisjoint(days[list(held_out)])
    m = result.metrics
    assert m["roc_auc_ci"][0] <= m["roc_auc"] <= m["roc_auc_ci"][1]
    assert m["base_rate"] == pytest.approx(y.mean()) and m["n_repeats"] == 2
    assert "day-blocked 4-fold x 2" in m["protocol"] and "whole days" in m["protocol"]
    assert result.replicates["roc_auc"].shape == (200,)
    assert result.normal_scores.size == 2 * int((y == 0).sum())


def test_rolling_origin_trains_on_the_past_and_cuts_between_days():
    X, y = rows(200)
    order = np.arange(200)[::-1]  # row 199 is the earliest
    days = order // 7
    pairs = origins(order, 4, 0.5, days)
    assert len(pairs) == 4
    for train, test in pairs:
        assert order[train].max() < order[test].min()
        assert set(days[train]).isdisjoint(days[test])
    Spy.fitted_on = []
    result = rolling_origin(Spy, X, y, order, n_origins=4, clusters=days, cluster_unit="days",
                            target_far=0.1, bootstrap=Bootstrap(100), unit="wafers")
    m = result.metrics
    assert len(m["origins"]) == 4 and m["n_rows"] == sum(o["n_test"] for o in m["origins"])
    assert m["n_rows"] == pytest.approx(100, abs=7)
    assert "4 origins" in m["protocol"] and m["optimistic"] is False


def _protocol(value, replicates):
    from pipelines.core.evaluation import ProtocolResult
    return ProtocolResult({"roc_auc": value}, {"roc_auc": np.asarray(replicates, dtype=float)})


def test_choose_model_prefers_the_simplest_of_the_tied():
    rng = np.random.default_rng(0)

    def protocols(a, b, spread=0.02):
        return {"a": _protocol(a, a + rng.normal(0, spread, 1000)),
                "b": _protocol(b, b + rng.normal(0, spread, 1000))}

    candidates = {"big": protocols(0.72, 0.62),     # leader on the mean of a and b (0.67)
                  "small": protocols(0.71, 0.61),   # 0.66: within noise of the leader
                  "far": protocols(0.55, 0.55)}     # 0.55: clearly worse
    chosen, record = choose_model(candidates, {"big": 2, "small": 1, "far": 0},
                                  protocols=("a", "b"))
    assert record["leader"] == "big" and record["tied"] == ["big", "small"]
    assert record["criterion"]["big"] == pytest.approx(0.67)
    assert chosen == "small"  # "far" is simplest but clearly worse than the leader
    candidates["small"] = protocols(0.60, 0.60, spread=0.001)  # clearly worse now
    assert choose_model(candidates, {"big": 2, "small": 1, "far": 0},
                        protocols=("a", "b"))[0] == "big"


def test_choose_model_ties_never_skip_a_better_candidate():
    """A noisy weaker candidate must not count as tied when a better one below the leader
    is already a clear loser: the walk down the ranking stops there."""
    rng = np.random.default_rng(1)
    candidates = {"leader": {"a": _protocol(0.70, 0.70 + rng.normal(0, 0.001, 1000))},
                  "steady": {"a": _protocol(0.66, 0.66 + rng.normal(0, 0.001, 1000))},
                  "noisy": {"a": _protocol(0.65, 0.65 + rng.normal(0, 0.2, 1000))}}
    chosen, record = choose_model(candidates, {"leader": 3, "steady": 2, "noisy": 1},
                                  protocols=("a",))
    assert record["tied"] == ["leader"] and chosen == "leader"

def test_problem_names_the_item_within_a_file():
    from pipelines.core.problems import Problem

    p = Problem("bad die", file="maps.npz", index=3, row=2, column="5")
    assert p.text() == "maps.npz, item 3, row 2, column 5: bad die"
    assert p.to_dict() == {"message": "bad die", "file": "maps.npz", "row": 2, "column": "5",
                           "index": 3}
    assert Problem("x", file="a.csv", row=1).text() == "a.csv, row 1: x"


def test_numpy_multiclass_report_matches_scikit_learn():
    """The serving-side report (no scikit-learn) gives scikit-learn's figures, empty classes too."""
    from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support)

    from pipelines.core.confusion import multiclass_report

    rng = np.random.default_rng(0)
    for _ in range(40):
        k, n = int(rng.integers(2, 9)), int(rng.integers(1, 60))
        y, p = rng.integers(0, k, n), rng.integers(0, k, n)
        report = multiclass_report(y, p, [f"c{i}" for i in range(k)])
        labels = list(range(k))
        precision, recall, f1, support = precision_recall_fscore_support(
            y, p, labels=labels, zero_division=0)
        assert report["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert report["macro_f1"] == pytest.approx(
            f1_score(y, p, labels=labels, average="macro", zero_division=0))
        present = multiclass_report(y, p, [f"c{i}" for i in range(k)], macro_over_present=True)
        assert present["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
        assert present["macro_classes"] == len(set(y) | set(p))
        got = [report["per_class"][f"c{i}"] for i in labels]
        assert [g["precision"] for g in got] == pytest.approx(precision.tolist())
        assert [g["recall"] for g in got] == pytest.approx(recall.tolist())
        assert [g["f1"] for g in got] == pytest.approx(f1.tolist())
        assert [g["support"] for g in got] == support.tolist()
        assert report["confusion_matrix"] == confusion_matrix(y, p, labels=labels).tolist()
