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
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import GroupKFold

from pipelines.timeseries.evaluate import evaluation_windows, pooled_cuts
from pipelines.timeseries.ingest import Series, rul_per_row
from pipelines.timeseries.schema import ANOMALY_RUL, WINDOW


def out_of_fold_scores(make_detector: Callable[[], object], X: np.ndarray, rul: np.ndarray,
                       machines: np.ndarray, fit_mask: np.ndarray, n_splits: int = 5,
                       feature_names: list[str] | None = None) -> np.ndarray:
    """Each window's score by a detector fitted without its engine: ``GroupKFold`` by
    ``machines``; fitting uses the windows in ``fit_mask`` (full windows) of the other folds."""
    scores = np.empty(len(X))
    for train, test in GroupKFold(n_splits=n_splits).split(X, rul, machines):
        train = train[fit_mask[train]]
        detector = make_detector()
        detector.fit(X[train], rul[train], feature_names=feature_names)
        scores[test] = detector.score(X[test])
    return scores


def cut_windows(scaler: dict, series: Series, machines: list[str], seeds: list[int],
                window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``series`` (index of each scored window's last cycle) and labels (true RUL <=
    30) of the windows the evaluate command scores on ``machines`` cut once per seed, pooled.

    A window depends only on its machine's rows up to its last cycle (a short machine's is
    padded with its first row either way), so a cut engine's windows are windows of the
    whole engine: scores computed once on ``series`` serve every cut.
    """
    pooled, last_rul = pooled_cuts(series, machines, seeds)
    _, rows, _, _ = evaluation_windows(scaler, pooled, window)
    true = rul_per_row(pooled, last_rul)[rows]
    return pooled.extra["source_rows"][rows], (true <= ANOMALY_RUL).astype(int)


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold (flag when score >= it) with the highest F1, and that F1."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])
