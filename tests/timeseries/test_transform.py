"""The transformation: sensors that don't vary are dropped, z-scores use training statistics
only, windows are padded at a machine's start, window features are what they say."""
from __future__ import annotations

import numpy as np

from pipelines.timeseries.ingest import Series
from pipelines.timeseries.transform import (concat_windows, feature_names, fit_scaler,
                                            history_slopes, iter_series_windows,
                                            machine_window_mean, machine_windows,
                                            series_windows, standardise,
                                            window_features, window_slopes)


def test_constant_and_two_valued_sensors_are_dropped():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(size=50), np.full(50, 3.0),
                              rng.choice([21.60, 21.61], 50), rng.normal(5, 2, 50)])
    scaler = fit_scaler(values, ["a", "b", "c", "d"])
    assert scaler["sensors"] == ["a", "d"] and scaler["dropped"] == ["b", "c"]
    z = standardise(scaler, values)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)
    # serving data is scaled with the training statistics, never its own
    shifted = standardise(scaler, values + 10)
    assert shifted[:, 0].mean() > 5


def test_windows_are_padded_with_the_first_row_at_the_start():
    z = np.arange(12, dtype=np.float32).reshape(6, 2)
    X, padded = machine_windows(z, 4)
    assert X.shape == (6, 4, 2) and padded.tolist() == [True] * 3 + [False] * 3
    np.testing.assert_array_equal(X[0], np.repeat(z[:1], 4, axis=0))
    np.testing.assert_array_equal(X[5], z[2:6])
    np.testing.assert_array_equal(X[1, -2:], z[:2])


def test_series_windows_follow_each_machine_and_training_keeps_full_windows_only():
    values = np.arange(20, dtype=float)[:, None] * np.array([[1.0, 2.0]])
    series = Series("s", np.array(["A"] * 12 + ["B"] * 8, dtype=object),
                    np.r_[np.arange(12), np.arange(8)].astype(float), values, ["x", "y"],
                    "csv")
    scaler = fit_scaler(values, ["x", "y"])
    every = series_windows(scaler, series, 5)
    assert len(every.X) == 20 and every.padded.sum() == 8
    full = series_windows(scaler, series, 5, full_only=True)
    assert len(full.X) == 8 + 4 and not full.padded.any()
    # a machine's windows never reach into the previous machine
    first_b = np.flatnonzero(every.rows == 12)[0]
    assert np.allclose(every.X[first_b], every.X[first_b][0])


def test_window_features():
    t = np.arange(30, dtype=np.float32)
    X = np.stack([np.column_stack([2 * t, np.ones(30)])])
    f = window_features(X)
    names = feature_names(["up", "flat"])
    got = dict(zip(names, f[0]))
    assert got["up:recent"] == 54 and got["up:mean"] == 29 and got["up:min"] == 0
    assert got["up:max"] == 58 and abs(got["up:slope"] - 2) < 1e-5 and got["flat:std"] == 0


def test_history_slopes_are_least_squares_over_everything_so_far():
    rng = np.random.default_rng(7)
    z = np.cumsum(rng.normal(size=(40, 3)), axis=0)
    slopes = history_slopes(z)
    assert slopes.shape == (40, 3) and (slopes[0] == 0).all()
    for i in (1, 5, 29, 39):
        expected = np.polyfit(np.arange(i + 1), z[:i + 1], 1)[0]
        np.testing.assert_allclose(slopes[i], expected, rtol=1e-4, atol=1e-5)
    # a window's own slope is the same fit over its cycles only
    X, _ = machine_windows(z.astype(np.float32), 10)
    np.testing.assert_allclose(window_slopes(X[20:21])[0], history_slopes(z[11:21])[-1],
                               rtol=1e-4, atol=1e-5)


def test_series_history_starts_again_at_each_machine():
    values = np.r_[np.arange(12.0), 100 - 3 * np.arange(8.0)][:, None] * np.array([[1.0, 2.0]])
    series = Series("s", np.array(["A"] * 12 + ["B"] * 8, dtype=object),
                    np.r_[np.arange(12), np.arange(8)].astype(float), values, ["x", "y"],
                    "csv")
    scaler = fit_scaler(values, ["x", "y"])
    every = series_windows(scaler, series, 5)
    rises, falls = every.history[every.rows < 12], every.history[every.rows >= 12]
    assert (rises[1:] > 0).all() and (falls[1:] < 0).all()  # B's history never holds A's rows
    np.testing.assert_allclose(falls[1:] / falls[-1], 1, rtol=1e-5)  # B: one straight line
    kept = series_windows(scaler, series, 5, full_only=True)
    np.testing.assert_array_equal(kept.history, every.history[~every.padded])


def test_windows_in_pieces_are_the_same_windows_never_all_at_once():
    rng = np.random.default_rng(3)
    values = np.cumsum(rng.normal(size=(45, 3)), axis=0)
    series = Series("s", np.array(["A"] * 23 + ["B"] * 3 + ["C"] * 19, dtype=object),
                    np.r_[np.arange(23), np.arange(3), np.arange(19)].astype(float), values,
                    ["x", "y", "z"], "csv")
    scaler = fit_scaler(values, ["x", "y", "z"])
    whole = series_windows(scaler, series, 5)
    for size in (1, 4, 7, 10, 100):
        pieces = list(iter_series_windows(scaler, series, 5, size))
        assert max(len(p.rows) for p in pieces) <= size
        joined = concat_windows(pieces)
        for field in ("X", "rows", "padded", "history"):
            np.testing.assert_array_equal(getattr(joined, field), getattr(whole, field))


def test_machine_window_mean_is_causal_per_machine_and_counts_missing_cycles_as_zero():
    values = np.arange(1.0, 8.0)[:, None] * np.array([[1.0, -1.0]])  # 1..7 and -1..-7
    machines = np.array(["A", "A", "A", "A", "B", "B", "B"])
    mean = machine_window_mean(values, machines, 3)
    # A: 1/3, (1+2)/3, (1+2+3)/3, (2+3+4)/3; B starts afresh: 5/3, (5+6)/3, (5+6+7)/3
    np.testing.assert_allclose(mean[:, 0], [1 / 3, 1, 2, 3, 5 / 3, 11 / 3, 6])
    np.testing.assert_allclose(mean[:, 1], -mean[:, 0])
    changed = values.copy()
    changed[3:] += 100  # later windows never move an earlier one's mean
    np.testing.assert_allclose(machine_window_mean(changed, machines, 3)[:3], mean[:3])
    np.testing.assert_allclose(machine_window_mean(values, machines, 1), values)
