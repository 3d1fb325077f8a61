"""Choosing the supervised models' flag level out of fold on cut engines (``selection``)."""
from __future__ import annotations

import numpy as np

from pipelines.timeseries.evaluate import evaluation_windows, pooled_cuts
from pipelines.timeseries.examples import synthetic_cmapss
from pipelines.timeseries.ingest import Series, rul_per_row
from pipelines.timeseries.schema import SENSORS
from pipelines.timeseries.selection import best_f1_threshold, cut_windows, out_of_fold_scores
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
