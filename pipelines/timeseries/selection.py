"""Choosing a supervised detector's flag level out of fold, on engines cut like the official
test set.

The official test files end each engine at a random cycle, so only a few percent of their
windows are anomalous (true RUL <= 30) and most of those lie a few cycles from the boundary:
F1 there hinges on where the flag is set. The level is therefore chosen on data shaped like
that, never on the validation engines:

1. out-of-fold scores: the training engines are split by engine (``GroupKFold``); each fold's
   detector is fitted on the other folds' full windows and scores every window of its own
   engines (:func:`out_of_fold_scores`);
2. those engines are cut ``n`` times like the official test set and pooled
   (``evaluate.pooled_cuts``); the windows the evaluate command would score are looked up in
   the out-of-fold scores (:func:`cut_windows`);
3. the flag level is the score threshold with the highest F1 over the pooled windows
   (:func:`best_f1_threshold`); the label stays "true RUL <= 30".

:func:`select_level` runs the three steps for one detector (training calls it).

``python -m pipelines.timeseries.selection [--seed 1000 --cuts 20]`` compares the candidate
settings (``CANDIDATES``) this way.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import GroupKFold

from pipelines.timeseries.detectors import history_kwargs
from pipelines.timeseries.evaluate import evaluation_windows, pooled_cuts
from pipelines.timeseries.ingest import Series, rul_per_row
from pipelines.timeseries.schema import ANOMALY_RUL, WINDOW
from pipelines.timeseries.transform import series_windows

OOF_SPLITS = 5  # GroupKFold splits of the training engines for the flag-level choice
SELECTION_CUTS = 20  # cuts of the training engines pooled for the flag-level choice
SELECTION_SEED = 1000  # their seeds: SELECTION_SEED, SELECTION_SEED + 1, ...


def out_of_fold_scores(make_detector: Callable[[], object], X: np.ndarray, rul: np.ndarray,
                       machines: np.ndarray, fit_mask: np.ndarray, n_splits: int = 5,
                       feature_names: list[str] | None = None,
                       history: np.ndarray | None = None) -> np.ndarray:
    """Each window's score by a detector fitted without its engine: ``GroupKFold`` by
    ``machines``; fitting uses the windows in ``fit_mask`` (full windows) of the other folds.
    ``history`` (per window) goes to detectors that use it."""
    scores = np.empty(len(X))
    for train, test in GroupKFold(n_splits=n_splits).split(X, rul, machines):
        train = train[fit_mask[train]]
        detector = make_detector()
        detector.fit(X[train], rul[train], feature_names=feature_names,
                     **history_kwargs(detector, None if history is None else history[train]))
        scores[test] = detector.score(
            X[test], **history_kwargs(detector, None if history is None else history[test]))
    return scores


def cut_windows(scaler: dict, series: Series, machines: list[str], seeds: list[int],
                window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``series`` (index of each scored window's last cycle) and labels (true RUL <=
    30) of the windows the evaluate command scores on ``machines`` cut once per seed, pooled.

    A window and its history slopes depend only on its machine's rows up to its last cycle (a
    short machine's window is padded with its first row either way), so a cut engine's
    windows are windows of the whole engine: scores computed once on ``series`` serve every
    cut.
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


def select_level(name: str, detector, scaler: dict, series: Series, machines: list[str],
                 seed: int = SELECTION_SEED, cuts: int = SELECTION_CUTS,
                 n_splits: int = OOF_SPLITS) -> dict:
    """The flag level of a supervised model with the best F1 out of fold on ``machines`` (the
    training engines) cut like the official test set (see ``selection``)."""
    every = series_windows(scaler, series, WINDOW)
    rul = rul_per_row(series)[every.rows]
    params = detector.get_params()
    scores = np.empty(len(series))
    scores[every.rows] = out_of_fold_scores(
        lambda: type(detector)(**params), every.X, rul, series.machines[every.rows],
        ~every.padded, n_splits, feature_names=scaler["sensors"], history=every.history)
    rows, labels = cut_windows(scaler, series, machines,
                               list(range(seed, seed + cuts)), WINDOW)
    value, f1 = best_f1_threshold(labels, scores[rows])
    return {"value": value, "oof_f1": round(f1, 4), "windows": int(len(rows)),
            "anomalous": int(labels.sum()), "engines": len(machines), "splits": n_splits,
            "cuts": cuts, "seeds": f"{seed}..{seed + cuts - 1}"}


CANDIDATES = {  # settings compared by ``python -m pipelines.timeseries.selection``
    "xgboost_rul (window only)": ("xgboost_rul", {"use_history": False}),
    "xgboost_eol (window only)": ("xgboost_eol", {"use_history": False}),
    "xgboost_rul": ("xgboost_rul", {}),
    "xgboost_eol (hard labels)": ("xgboost_eol", {"label_scale": 0.0}),
    "xgboost_eol (label_scale 2)": ("xgboost_eol", {"label_scale": 2.0}),
    "xgboost_eol (label_scale 4)": ("xgboost_eol", {"label_scale": 4.0}),
    "xgboost_eol (label_scale 6)": ("xgboost_eol", {"label_scale": 6.0}),
}


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
    args = parser.parse_args(argv)
    series = read_cmapss(find_data(args.data))
    train_ids, _ = split_machines(series.machine_ids())  # the release's split (seed 0)
    train_s = subset(series, train_ids)
    scaler = fit_scaler(train_s.values, train_s.sensors)
    out = {}
    for label, (model, params) in CANDIDATES.items():
        detector = get_detector_class("timeseries", model)(n_jobs=args.threads, **params)
        out[label] = select_level(model, detector, scaler, train_s, train_ids, seed=args.seed,
                                  cuts=args.cuts)
        print(f"{label}: out-of-fold F1 {out[label]['oof_f1']:.4f} at "
              f"{out[label]['value']:.4g}", file=sys.stderr)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
