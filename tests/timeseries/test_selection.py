"""Choosing the supervised models' flag level out of fold on cut engines (``selection``)."""
from __future__ import annotations

import json

import numpy as np

from pipelines.timeseries.evaluate import evaluation_windows, pooled_cuts
from pipelines.timeseries.examples import synthetic_cmapss
from pipelines.timeseries.ingest import Series, rul_per_row
from pipelines.timeseries.schema import SENSORS
from pipelines.timeseries.selection import (best_f1_threshold, cut_windows, out_of_fold_rows,
                                            out_of_fold_scores, row_scores)
from pipelines.timeseries.transform import fit_scaler, series_windows


def _series(n_engines: int = 6) -> Series:
    rows = synthetic_cmapss(n_engines, seed=3, min_cycles=40, max_cycles=120)
    return Series("synthetic", rows["unit"].astype(str), rows["cycle"].astype(float),
                  rows["sensors"], list(SENSORS), "cmapss", settings=rows["settings"])


def test_cut_windows_are_the_windows_the_evaluate_command_scores():
    series = _series()
    scaler = fit_scaler(series.values, series.sensors)
    machines = series.machine_ids()
    rows, labels = cut_windows(scaler, series, machines, [5, 6, 7])
    pooled, last_rul = pooled_cuts(series, machines, [5, 6, 7])
    scored, last, _ = evaluation_windows(scaler, pooled)
    assert len(rows) == len(scored.X) and len(last) == 3 * len(machines)
    every = series_windows(scaler, series)
    at = np.empty(len(series), dtype=int)
    at[every.rows] = np.arange(len(every.rows))
    np.testing.assert_array_equal(every.X[at[rows]], scored.X)  # same windows, in the whole
    # and the same history slopes: they look only backwards from each window's end
    np.testing.assert_allclose(every.history[at[rows]], scored.history, atol=1e-6)
    np.testing.assert_array_equal(labels, rul_per_row(pooled, last_rul)[scored.rows] <= 30)
    np.testing.assert_array_equal(labels, rul_per_row(series)[rows] <= 30)


class _Recorder:
    """Scores a window with the largest RUL it was fitted on; remembers what it saw."""

    seen: list[set] = []

    def fit(self, X, y, feature_names=None):
        self.seen.append(set(np.round(y, 3)))
        self.top = float(np.max(y))
        return self

    def score(self, X):
        return np.full(len(X), self.top)


def test_out_of_fold_scores_never_fit_on_the_engine_they_score():
    machines = np.repeat(np.arange(10), 7)
    rul = machines * 1000.0 + np.tile(np.arange(7), 10)  # each engine's own RUL values
    full = np.tile(np.arange(7) > 0, 10)
    _Recorder.seen = []
    scores = out_of_fold_scores(_Recorder, np.zeros((70, 3, 2)), rul, machines, full, 5)
    assert len(_Recorder.seen) == 5
    for m in range(10):
        fold_top = scores[machines == m]
        assert (fold_top // 1000 != m).all()  # fitted without engine m
    seen = set().union(*_Recorder.seen)
    assert not any(r % 1000 == 0 for r in seen)  # padded windows (fit_mask False) never fitted


def test_best_f1_threshold():
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    scores = np.arange(8.0)
    value, f1 = best_f1_threshold(labels, scores)
    assert value == 3.0 and np.isclose(f1, 2 * 4 / (2 * 4 + 1))


class _HistoryRecorder:
    """A detector that reads its machine's windows (``uses_machines``): remembers the RUL of
    every window it was fitted on and the machine ids it was asked to score."""

    uses_machines = True
    fitted_rul: list[np.ndarray] = []
    scored: list[np.ndarray] = []

    def get_params(self):
        return {}

    def fit(self, X, y, feature_names=None):
        self.fitted_rul.append(np.asarray(y))
        return self

    def score(self, X, machines=None):
        self.scored.append(np.asarray(machines))
        return X[:, -1, 0]


def test_anomaly_detectors_are_fitted_on_healthy_windows_and_score_whole_machines_in_order():
    series = _series()
    scaler = fit_scaler(series.values, series.sensors)
    _HistoryRecorder.fitted_rul, _HistoryRecorder.scored = [], []
    rows = out_of_fold_rows(_HistoryRecorder(), scaler, series, fit_rul=40, n_splits=3)
    assert len(_HistoryRecorder.fitted_rul) == 3
    assert all((rul > 40).all() and len(rul) for rul in _HistoryRecorder.fitted_rul)
    for machines in _HistoryRecorder.scored:  # each machine's windows together, every one
        runs = [m for k, m in enumerate(machines) if k == 0 or machines[k - 1] != m]
        assert len(runs) == len(set(runs))
        for m in set(runs):
            assert (machines == m).sum() == (series.machines == m).sum()
    every = series_windows(scaler, series)
    np.testing.assert_allclose(rows[every.rows], every.X[:, -1, 0])  # back on their rows
    _HistoryRecorder.fitted_rul = []
    out_of_fold_rows(_HistoryRecorder(), scaler, series, fit_rul=40, n_splits=3, max_fit=25)
    assert all(len(rul) == 25 for rul in _HistoryRecorder.fitted_rul)
    # the supervised models (fit_rul None) learn from every full window
    _HistoryRecorder.fitted_rul = []
    out_of_fold_rows(_HistoryRecorder(), scaler, series, fit_rul=None, n_splits=3)
    full = int((~every.padded).sum())
    assert sum(len(rul) for rul in _HistoryRecorder.fitted_rul) == 2 * full  # 3 folds


def test_row_scores_are_the_scores_of_each_rows_window_in_its_machine():
    series = _series(3)
    scaler = fit_scaler(series.values, series.sensors)
    every = series_windows(scaler, series)
    _HistoryRecorder.scored = []
    scores = row_scores(_HistoryRecorder(), every, series)
    np.testing.assert_array_equal(_HistoryRecorder.scored[0], series.machines[every.rows])
    np.testing.assert_allclose(scores[every.rows], every.X[:, -1, 0])


def test_the_evaluate_command_records_each_run_and_counts_runs_on_the_same_test_file(
        tmp_path):
    """A test file is meant to be scored once: every run is appended with the file's sha256,
    and the count of runs on that file says whether it was scored before."""
    from pipelines.timeseries.evaluate import record_run

    test, other, rul = tmp_path / "test.txt", tmp_path / "other.txt", tmp_path / "rul.txt"
    test.write_text("1 1 0 0 0\n")
    other.write_text("2 1 0 0 0\n")
    rul.write_text("10\n")
    document = {"models": {"xgboost_eol": {"f1": 0.9}}, "rul": {"rmse": 11.0},
                "windows": {"total": 1, "engines": 1}}
    release = {"created": "2026-12-05", "default_model": "xgboost_eol"}
    record = tmp_path / "runs" / "timeseries.jsonl"
    counts = [record_run(record, document, f, rul, release)["runs_on_this_test_file"]
              for f in (test, other, test)]
    assert counts == [1, 1, 2]
    lines = [json.loads(t) for t in record.read_text().splitlines()]
    assert [line["test"]["file"] for line in lines] == ["test.txt", "other.txt", "test.txt"]
    assert lines[0]["f1"] == {"xgboost_eol": 0.9} and lines[0]["rul_rmse"] == 11.0
    assert lines[0]["release"]["default_model"] == "xgboost_eol"
