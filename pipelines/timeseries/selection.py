"""Choosing every model's flag level (and the shipped settings) out of fold, on engines cut
like the official test set.

The official test files end each engine at a random cycle, so only a few percent of their
windows are anomalous (true RUL <= 30) and most of those lie a few cycles from the boundary:
F1 there hinges on where the flag is set. Levels are therefore chosen on data shaped like
that, never on the validation engines:

1. out-of-fold scores: the training engines are split by engine (``GroupKFold``); each fold's
   detector is fitted on the other folds' windows (every full window for the supervised
   models; for the anomaly detectors the healthy ones, full windows with RUL above their
   ``fit_rul``) and scores every window of its own engines, each machine's windows in cycle
   order so that a network averaging over its machine's last windows reads them
   (:func:`out_of_fold_scores`);
2. those engines are cut ``n`` times like the official test set and pooled
   (``evaluate.pooled_cuts``); the windows the evaluate command would score are looked up in
   the out-of-fold scores (:func:`cut_windows`);
3. the flag level is the score threshold with the highest F1 over the pooled windows
   (:func:`best_f1_threshold`); the label stays "true RUL <= 30".

:func:`select_level` runs the three steps for one detector (training calls it for all five).

``python -m pipelines.timeseries.selection [--seed 1000 --cuts 20] [--group supervised|
anomaly]`` compares the candidate settings (``CANDIDATES``, ``ANOMALY_CANDIDATES``) this way:
what chose the shipped ones.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import GroupKFold

from pipelines.timeseries.detectors import history_kwargs, scoring_kwargs
from pipelines.timeseries.evaluate import evaluation_windows, pooled_cuts
from pipelines.timeseries.ingest import Series, rul_per_row
from pipelines.timeseries.schema import ANOMALY_RUL, RUL_CAP, WINDOW
from pipelines.timeseries.transform import Windows, series_windows

OOF_SPLITS = 5  # GroupKFold splits of the training engines for the flag-level choice
SELECTION_CUTS = 20  # cuts of the training engines pooled for the flag-level choice
SELECTION_SEED = 1000  # their seeds: SELECTION_SEED, SELECTION_SEED + 1, ...


def out_of_fold_scores(make_detector: Callable[[], object], X: np.ndarray, rul: np.ndarray,
                       machines: np.ndarray, fit_mask: np.ndarray, n_splits: int = 5,
                       feature_names: list[str] | None = None,
                       history: np.ndarray | None = None,
                       output: Callable | None = None, max_fit: int | None = None
                       ) -> np.ndarray:
    """Each window's score by a detector fitted without its engine: ``GroupKFold`` by
    ``machines``; fitting uses the windows in ``fit_mask`` of the other folds (at most
    ``max_fit`` of them, drawn with seed 0, as a quick training run draws). ``history``
    (per window) and ``machines`` go to detectors that use them (windows listed machine by
    machine, in cycle order). ``output(detector, X, history, machines)`` replaces the score
    (e.g. a network's per-sensor errors)."""
    output = output or (lambda d, x, h, m: d.score(x, **scoring_kwargs(d, h, m)))
    scores = None
    for train, test in GroupKFold(n_splits=n_splits).split(X, rul, machines):
        train = train[fit_mask[train]]
        if max_fit is not None and len(train) > max_fit:
            train = np.sort(np.random.default_rng(0).choice(train, max_fit, replace=False))
        detector = make_detector()
        detector.fit(X[train], rul[train], feature_names=feature_names,
                     **history_kwargs(detector, None if history is None else history[train]))
        out = np.asarray(output(detector, X[test], None if history is None else history[test],
                                machines[test]))
        if scores is None:
            scores = np.empty((len(X),) + out.shape[1:])
        scores[test] = out
    return scores


def cut_windows(scaler: dict, series: Series, machines: list[str], seeds: list[int],
                window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``series`` (index of each scored window's last cycle) and labels (true RUL <=
    30) of the windows the evaluate command scores on ``machines`` cut once per seed, pooled.

    A window, its history slopes and a network's average over its machine's last windows
    depend only on its machine's rows up to its last cycle (a short machine's window is
    padded with its first row either way), so a cut engine's windows are windows of the whole
    engine: scores computed once on ``series`` serve every cut.
    """
    pooled, last_rul = pooled_cuts(series, machines, seeds)
    scored, _, _ = evaluation_windows(scaler, pooled, window)
    true = rul_per_row(pooled, last_rul)[scored.rows]
    return pooled.extra["source_rows"][scored.rows], (true <= ANOMALY_RUL).astype(int)


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold (flag when score >= it) with the highest F1, and that F1."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def row_scores(detector, windows: Windows, series: Series) -> np.ndarray:
    """(rows of ``series``,) the score of the window ending at each row: ``windows`` are
    :func:`series_windows` of ``series`` (every window, machine by machine)."""
    scores = np.full(len(series), np.nan)
    scores[windows.rows] = detector.score(windows.X, **scoring_kwargs(
        detector, windows.history, series.machines[windows.rows]))
    return scores


def fit_mask(windows: Windows, rul: np.ndarray, fit_rul: float | None) -> np.ndarray:
    """The windows a detector learns from: full ones, with RUL above ``fit_rul`` unless it is
    None (the supervised models learn from every full window)."""
    full = ~windows.padded
    return full if fit_rul is None else full & (rul > fit_rul)


def out_of_fold_rows(detector, scaler: dict, series: Series, fit_rul: float | None,
                     n_splits: int = OOF_SPLITS, output: Callable | None = None,
                     max_fit: int | None = None) -> np.ndarray:
    """Out-of-fold :func:`out_of_fold_scores` (or ``output``) of a detector with
    ``detector``'s parameters, per row of ``series``."""
    every = series_windows(scaler, series, WINDOW)
    rul = rul_per_row(series)[every.rows]
    params = detector.get_params()
    out = out_of_fold_scores(lambda: type(detector)(**params), every.X, rul,
                             series.machines[every.rows], fit_mask(every, rul, fit_rul),
                             n_splits, feature_names=scaler["sensors"], history=every.history,
                             output=output, max_fit=max_fit)
    rows = np.full((len(series),) + out.shape[1:], np.nan)
    rows[every.rows] = out
    return rows


def level_at_best_f1(scores: np.ndarray, scaler: dict, series: Series, machines: list[str],
                     seed: int = SELECTION_SEED, cuts: int = SELECTION_CUTS) -> dict:
    """The flag level with the best F1 over ``machines`` cut ``cuts`` times (seeds from
    ``seed``) and pooled, given each row's score; the figures behind it."""
    rows, labels = cut_windows(scaler, series, machines, list(range(seed, seed + cuts)), WINDOW)
    value, f1 = best_f1_threshold(labels, scores[rows])
    return {"value": value, "oof_f1": round(f1, 4), "windows": int(len(rows)),
            "anomalous": int(labels.sum()), "engines": len(machines), "cuts": cuts,
            "seeds": f"{seed}..{seed + cuts - 1}"}


def select_level(name: str, detector, scaler: dict, series: Series, machines: list[str],
                 seed: int = SELECTION_SEED, cuts: int = SELECTION_CUTS,
                 n_splits: int = OOF_SPLITS, fit_rul: float | None = None,
                 max_fit: int | None = None) -> dict:
    """The flag level of a model with the best F1 out of fold on ``machines`` (the training
    engines) cut like the official test set (see the module doc); ``fit_rul``: an anomaly
    detector learns from full windows with RUL above it (None: every full window), at most
    ``max_fit`` of them."""
    scores = out_of_fold_rows(detector, scaler, series, fit_rul, n_splits, max_fit=max_fit)
    return level_at_best_f1(scores, scaler, series, machines, seed, cuts) | {
        "splits": n_splits, "fit_rul": fit_rul}


CANDIDATES = {  # supervised settings compared by ``python -m pipelines.timeseries.selection``
    "xgboost_rul (window only)": ("xgboost_rul", {"use_history": False}),
    "xgboost_eol (window only)": ("xgboost_eol", {"use_history": False}),
    "xgboost_rul": ("xgboost_rul", {}),
    "xgboost_eol (hard labels)": ("xgboost_eol", {"label_scale": 0.0}),
    "xgboost_eol (label_scale 2)": ("xgboost_eol", {"label_scale": 2.0}),
    "xgboost_eol (label_scale 4)": ("xgboost_eol", {"label_scale": 4.0}),
    "xgboost_eol (label_scale 6)": ("xgboost_eol", {"label_scale": 6.0}),
}
# anomaly detectors: (model, parameters, fit on windows with RUL above, history_windows to
# compare); a window network is fitted once per fold and each history_windows read off the
# same out-of-fold errors
ANOMALY_CANDIDATES = {
    "isolation_forest, fit RUL > 30": ("isolation_forest", {}, ANOMALY_RUL, [1]),
    "isolation_forest, fit RUL > 125": ("isolation_forest", {}, RUL_CAP, [1]),
    "lstm_autoencoder, fit RUL > 30, squared error of the whole window (as before issue 20)":
        ("lstm_autoencoder", {}, ANOMALY_RUL, [1]),
    "lstm_autoencoder, fit RUL > 125, squared error of the whole window":
        ("lstm_autoencoder", {}, RUL_CAP, [1]),
    "lstm_autoencoder, fit RUL > 125, mean error of the last 5 cycles":
        ("lstm_autoencoder", {"score_on": "mean_error", "recent": 5}, RUL_CAP, [1, 10, 30]),
    "patchtst, fit RUL > 30, squared forecast error (as before issue 20)":
        ("patchtst", {}, ANOMALY_RUL, [1, 30]),
    "patchtst, fit RUL > 30, forecast bias": ("patchtst", {"score_on": "mean_error"},
                                              ANOMALY_RUL, [1, 30, 60]),
    "patchtst, fit RUL > 125, forecast bias": ("patchtst", {"score_on": "mean_error"},
                                               RUL_CAP, [1, 15, 30, 45, 60, 90]),
}


def compare_anomaly_candidate(model: str, params: dict, fit_rul: float, history_windows: list,
                              scaler: dict, series: Series, machines: list[str], seed: int,
                              cuts: int, threads: int) -> dict:
    """One anomaly candidate's out-of-fold F1 at its best level, per ``history_windows``."""
    from pipelines.core.detectors import get_detector_class
    from pipelines.timeseries.detectors.onnx_window import sensor_shares

    detector = get_detector_class("timeseries", model)(n_jobs=threads, **params)
    if not hasattr(detector, "errors"):
        scores = out_of_fold_rows(detector, scaler, series, fit_rul)
        return {"1": level_at_best_f1(scores, scaler, series, machines, seed, cuts)}
    errors = out_of_fold_rows(detector, scaler, series, fit_rul,
                              output=lambda d, x, h, m: d.errors(x))
    out = {}
    for k in history_windows:  # rows of the C-MAPSS file: machine by machine, cycle order
        scores = sensor_shares(errors, series.machines, k, detector.score_on).sum(axis=1)
        out[str(k)] = level_at_best_f1(scores, scaler, series, machines, seed, cuts)
    return out


def main(argv: list[str] | None = None) -> int:
    """Pooled out-of-fold F1 (at each one's best level) of the candidate settings on the
    release's training engines cut like the official test set; one JSON document on stdout.
    The validation engines play no part."""
    import argparse
    import json
    import os
    import sys
    from pathlib import Path

    from pipelines.core import locations
    from pipelines.core.detectors import get_detector_class
    from pipelines.timeseries.ingest import find_data, read_cmapss, subset
    from pipelines.timeseries.split import split_machines
    from pipelines.timeseries.transform import fit_scaler

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=locations.data_dir(os.environ))
    parser.add_argument("--seed", type=int, default=SELECTION_SEED, help="first cut seed")
    parser.add_argument("--cuts", type=int, default=SELECTION_CUTS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--group", choices=("supervised", "anomaly", "all"), default="all",
                        help="which candidates: the supervised models' (minutes) or the "
                             "anomaly detectors' (a window network is fitted 5 times per "
                             "candidate: about an hour on two busy cores)")
    parser.add_argument("--only", default="",
                        help="only the candidates whose label holds this text, e.g. "
                             "'patchtst, fit RUL > 125'")
    args = parser.parse_args(argv)
    series = read_cmapss(find_data(args.data))
    train_ids, _ = split_machines(series.machine_ids())  # the release's split (seed 0)
    train_s = subset(series, train_ids)
    scaler = fit_scaler(train_s.values, train_s.sensors)
    out = {}
    if args.group in ("supervised", "all"):
        for label, (model, params) in CANDIDATES.items():
            if args.only not in label:
                continue
            detector = get_detector_class("timeseries", model)(n_jobs=args.threads, **params)
            out[label] = select_level(model, detector, scaler, train_s, train_ids,
                                      seed=args.seed, cuts=args.cuts)
            print(f"{label}: out-of-fold F1 {out[label]['oof_f1']:.4f} at "
                  f"{out[label]['value']:.4g}", file=sys.stderr)
    if args.group in ("anomaly", "all"):
        for label, (model, params, fit_rul, ks) in ANOMALY_CANDIDATES.items():
            if args.only not in label:
                continue
            out[label] = compare_anomaly_candidate(model, params, fit_rul, ks, scaler, train_s,
                                                   train_ids, args.seed, args.cuts,
                                                   args.threads)
            for k, figures in out[label].items():
                print(f"{label}, history_windows {k}: out-of-fold F1 "
                      f"{figures['oof_f1']:.4f} at {figures['value']:.4g}", file=sys.stderr)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
