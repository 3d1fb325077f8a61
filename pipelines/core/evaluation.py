"""Evaluation per task (binary, multiclass, regression) with the splitter as a parameter.

Every fitted step (preprocessing, oversampling, the model) is fitted inside the training part
of each split: a detector's ``fit`` does all of it, so passing raw rows here is leak-free.

Splitters are functions ``(X, y, groups) -> iterator of (repeat, train_index, test_index)``:
:func:`stratified` (shuffled, class balance kept), :func:`grouped` (all rows of a machine or a
day in one fold), :func:`time_ordered` (train on the past, test on the next block).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score,
                             confusion_matrix, f1_score, mean_absolute_error,
                             precision_recall_fscore_support, r2_score, roc_auc_score)
from sklearn.model_selection import (GroupKFold, RepeatedStratifiedKFold, StratifiedKFold,
                                     TimeSeriesSplit)

from pipelines.core.thresholds import false_alarm_rate, threshold_at_false_alarm_rate

logger = logging.getLogger(__name__)

TASKS = ("binary", "multiclass", "regression")
DetectorFactory = Callable[[], object]
Split = tuple[int, np.ndarray, np.ndarray]
Splitter = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], Iterator[Split]]


# -- splitters ---------------------------------------------------------------------------------
def stratified(n_splits: int = 5, n_repeats: int = 1, random_state: int = 42) -> Splitter:
    """Shuffled stratified k-fold, repeated ``n_repeats`` times with fresh shuffles."""
    def split(X, y, groups=None):
        if n_repeats == 1:
            folds = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
        else:
            folds = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats,
                                            random_state=random_state)
        for i, (train, test) in enumerate(folds.split(X, y)):
            yield i // n_splits, train, test
    split.description = (f"repeated stratified {n_splits}-fold x {n_repeats}" if n_repeats > 1
                         else f"stratified {n_splits}-fold")
    return split


def grouped(n_splits: int = 5) -> Splitter:
    """K-fold over groups (machines, days): every row of a group lands in the same fold."""
    def split(X, y, groups=None):
        if groups is None:
            raise ValueError("a grouped split needs groups (one id per row)")
        for train, test in GroupKFold(n_splits=n_splits).split(X, y, groups):
            yield 0, train, test
    split.description = f"grouped {n_splits}-fold (whole groups per fold)"
    return split


def time_ordered(n_splits: int = 5) -> Splitter:
    """Expanding-window split over rows sorted by ``groups`` (a time or order key).

    Each fold trains on everything before its test block; the first block is never tested.
    """
    def split(X, y, groups=None):
        if groups is None:
            raise ValueError("a time-ordered split needs an order key (one per row)")
        ranked = np.argsort(np.asarray(groups), kind="stable")
        for train, test in TimeSeriesSplit(n_splits=n_splits).split(ranked):
            yield 0, ranked[train], ranked[test]
    split.description = f"time-ordered {n_splits}-fold (train on earlier rows only)"
    return split


# -- metrics per task ---------------------------------------------------------------------------
def binary_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking metrics plus fail-class precision/recall/F1 and balanced accuracy at a threshold."""
    y = np.asarray(y).astype(int)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", pos_label=1, zero_division=0)
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def multiclass_metrics(y: np.ndarray, probabilities: np.ndarray,
                       classes: list[str] | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    ``probabilities`` is (rows, classes); the predicted class is the most probable one.
    """
    y = np.asarray(y).astype(int)
    probabilities = np.asarray(probabilities)
    labels = list(range(probabilities.shape[1]))
    names = classes or [str(c) for c in labels]
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro",
                                   zero_division=0)),
        "per_class": {names[k]: {"precision": float(precision[k]), "recall": float(recall[k]),
                                 "f1": float(f1[k]), "support": int(support[k])}
                      for k in labels},
        "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
    }


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of a numeric prediction."""
    y = np.asarray(y, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    return {
        "rmse": float(np.sqrt(np.mean((predicted - y) ** 2))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)) if len(y) > 1 else float("nan"),
    }


def summarise(per_split: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each numeric metric over splits, with ``<metric>_std`` beside it."""
    out: dict[str, float] = {}
    for key, first in per_split[0].items():
        if not isinstance(first, (int, float)):
            continue
        values = np.array([m[key] for m in per_split], dtype=float)
        out[key] = round(float(values.mean()), 4)
        out[f"{key}_std"] = round(float(values.std()), 4)
    return out


def _fold_metrics(task: str, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if task == "binary":
        return {"roc_auc": float(roc_auc_score(y, scores)),
                "pr_auc": float(average_precision_score(y, scores))}
    if task == "multiclass":
        metrics = multiclass_metrics(y, scores)
        return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
    return regression_metrics(y, scores)


# -- protocols ----------------------------------------------------------------------------------
@dataclass
class CVResult:
    """Cross-validation metrics; for binary tasks, the threshold and the normal scores it came from."""

    metrics: dict
    threshold: float | None = None
    normal_scores: np.ndarray | None = None


def cross_validate(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray, *,
                   task: str = "binary", splitter: Splitter | None = None,
                   groups: np.ndarray | None = None, target_far: float = 0.05,
                   progress: Callable[[str], None] | None = None) -> CVResult:
    """Fit a fresh detector on each training part and score its test part.

    Per-fold metrics are averaged over folds (scikit-learn's convention). For a binary task,
    each repeat's out-of-fold scores are also pooled: a threshold is set at ``target_far`` of
    that repeat's normal rows and the threshold metrics (precision, recall, F1, balanced
    accuracy) and ``*_pooled`` ranking metrics are taken there; the returned threshold comes
    from all repeats' normal out-of-fold scores.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got '{task}'")
    splitter = splitter or stratified()
    y = np.asarray(y)
    if task == "binary":
        y = y.astype(int)
    splits = list(splitter(X, y, groups))
    n_repeats = 1 + max(repeat for repeat, _, _ in splits)
    oof: list[np.ndarray | None] = [None] * n_repeats
    per_fold = []
    for k, (repeat, train, test) in enumerate(splits):
        scores = np.asarray(make_detector().fit(X[train], y[train]).score(X[test]))
        if oof[repeat] is None:
            oof[repeat] = np.full((len(y), *scores.shape[1:]), np.nan)
        oof[repeat][test] = scores
        per_fold.append(_fold_metrics(task, y[test], scores))
        if progress:
            progress(f"fold {k + 1}/{len(splits)}")
    metrics = summarise(per_fold)
    protocol = f"{getattr(splitter, 'description', 'cross-validation')}, all fitting inside folds"
    if task != "binary":
        metrics.update(protocol=protocol + "; metrics averaged over folds", n_rows=int(len(y)))
        return CVResult(metrics)

    per_repeat = []
    for scores in oof:
        tested = ~np.isnan(scores)
        threshold = threshold_at_false_alarm_rate(scores[tested & (y == 0)], target_far)
        pooled = binary_metrics(y[tested], scores[tested], threshold)
        pooled["roc_auc_pooled"] = pooled.pop("roc_auc")
        pooled["pr_auc_pooled"] = pooled.pop("pr_auc")
        per_repeat.append(pooled)
    metrics |= summarise(per_repeat)
    metrics.update(protocol=f"{protocol}; ROC-AUC and PR-AUC averaged over folds; threshold "
                            f"metrics at {target_far:.0%} out-of-fold false alarms per repeat",
                   n_rows=int(len(y)), n_fail=int(y.sum()))
    normal = np.concatenate([s[(y == 0) & ~np.isnan(s)] for s in oof])
    return CVResult(metrics, threshold_at_false_alarm_rate(normal, target_far), normal)


def oof_threshold(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray, *,
                  target_far: float, splitter: Splitter | None = None,
                  groups: np.ndarray | None = None) -> float:
    """Threshold from one round of out-of-fold scores of normal (label 0) rows."""
    y = np.asarray(y).astype(int)
    oof = np.full(len(y), np.nan)
    for _, train, test in (splitter or stratified())(X, y, groups):
        oof[test] = make_detector().fit(X[train], y[train]).score(X[test])
    return threshold_at_false_alarm_rate(oof[(y == 0) & ~np.isnan(oof)], target_far)


def time_split(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray, order: np.ndarray,
               *, train_fraction: float = 0.75, target_far: float = 0.05,
               splitter: Splitter | None = None, unit: str = "rows") -> dict:
    """Binary task: train on the earliest ``train_fraction`` of rows (by ``order``), test on the rest.

    The threshold comes from out-of-fold scores inside the training part only. ``unit`` names
    the rows in the protocol text ("wafers").
    """
    y = np.asarray(y).astype(int)
    ranked = np.argsort(order, kind="stable")
    cut = int(round(train_fraction * len(y)))
    train, test = ranked[:cut], ranked[cut:]
    threshold = oof_threshold(make_detector, X[train], y[train], target_far=target_far,
                              splitter=splitter)
    scores = make_detector().fit(X[train], y[train]).score(X[test])
    metrics = {k: round(v, 4) for k, v in binary_metrics(y[test], scores, threshold).items()}
    metrics.update(protocol=f"earliest {train_fraction:.0%} of {unit} by timestamp to train, "
                            f"latest {1 - train_fraction:.0%} to test; threshold from "
                            f"out-of-fold scores inside the training part",
                   n_train=int(len(train)), n_test=int(len(test)),
                   n_test_fail=int(y[test].sum()),
                   test_false_alarm_rate=round(false_alarm_rate(scores[y[test] == 0], threshold), 4))
    return metrics
