"""Metrics, threshold choice and the evaluation protocols (cross-validation and time split).

Every fitted step (preprocessing, oversampling, the model) is fitted inside the training part
of each split: a detector's ``fit`` does all of it, so passing raw rows here is leak-free.

Command line: ``python -m pipelines.evaluate sensor --data DIR`` prints one JSON document on
stdout (progress goes to stderr).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.metrics import (average_precision_score, balanced_accuracy_score,
                             precision_recall_fscore_support, roc_auc_score)
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold

logger = logging.getLogger(__name__)

METRIC_KEYS = ("roc_auc", "pr_auc", "balanced_accuracy", "precision", "recall", "f1")
DetectorFactory = Callable[[], object]


def threshold_at_false_alarm_rate(normal_scores: np.ndarray, target_far: float) -> float:
    """Smallest threshold at which at most ``target_far`` of normal scores are flagged.

    A row is flagged when ``score >= threshold``.
    """
    scores = np.sort(np.asarray(normal_scores, dtype=float))
    if scores.size == 0:
        raise ValueError("need at least one normal score to choose a threshold")
    if not 0.0 < target_far < 1.0:
        raise ValueError(f"target false-alarm rate must be in (0, 1), got {target_far}")
    allowed = int(np.floor(target_far * scores.size))  # normal rows we may flag
    if allowed == 0:
        return float(np.nextafter(scores[-1], np.inf))
    # flag the top `allowed` scores: threshold just above the next one down
    return float(np.nextafter(scores[-allowed - 1], np.inf))


def false_alarm_rate(normal_scores: np.ndarray, threshold: float) -> float:
    """Share of normal rows flagged at ``threshold``."""
    return float(np.mean(np.asarray(normal_scores) >= threshold))


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


def summarise(per_split: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over splits, with ``<metric>_std`` beside it."""
    out: dict[str, float] = {}
    for key in per_split[0]:
        values = np.array([m[key] for m in per_split])
        out[key] = round(float(values.mean()), 4)
        out[f"{key}_std"] = round(float(values.std()), 4)
    return out


@dataclass
class CVResult:
    """Cross-validation metrics and the out-of-fold normal scores the threshold came from."""

    metrics: dict
    threshold: float
    normal_scores: np.ndarray


def cross_validate(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray, *,
                   n_splits: int = 5, n_repeats: int = 3, target_far: float = 0.05,
                   random_state: int = 42,
                   progress: Callable[[str], None] | None = None) -> CVResult:
    """Repeated stratified k-fold, every fitted step inside the training folds.

    ``roc_auc`` and ``pr_auc`` are the mean over all folds (scikit-learn's convention for a
    cross-validated score); ``*_pooled`` are the same metrics on each repeat's pooled
    out-of-fold scores. Threshold metrics (precision, recall, F1, balanced accuracy) are taken
    per repeat on pooled out-of-fold scores, at the threshold that flags ``target_far`` of that
    repeat's passing wafers; the shipped threshold pools all repeats' passing scores.
    """
    y = np.asarray(y).astype(int)
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats,
                                       random_state=random_state)
    oof = np.full((n_repeats, len(y)), np.nan)
    per_fold = []
    for i, (train, test) in enumerate(splitter.split(X, y)):
        detector = make_detector().fit(X[train], y[train])
        scores = detector.score(X[test])
        oof[i // n_splits, test] = scores
        per_fold.append({"roc_auc": float(roc_auc_score(y[test], scores)),
                         "pr_auc": float(average_precision_score(y[test], scores))})
        if progress:
            progress(f"fold {i + 1}/{n_splits * n_repeats}")
    per_repeat = []
    for scores in oof:
        threshold = threshold_at_false_alarm_rate(scores[y == 0], target_far)
        metrics = binary_metrics(y, scores, threshold)
        metrics["roc_auc_pooled"] = metrics.pop("roc_auc")
        metrics["pr_auc_pooled"] = metrics.pop("pr_auc")
        per_repeat.append(metrics)
    metrics = summarise(per_fold) | summarise(per_repeat)
    metrics.update(protocol=f"repeated stratified {n_splits}-fold x {n_repeats}, all fitting "
                            f"inside folds; ROC-AUC and PR-AUC averaged over folds; threshold "
                            f"metrics at {target_far:.0%} out-of-fold false alarms per repeat",
                   n_rows=int(len(y)), n_fail=int(y.sum()))
    normal = oof[:, y == 0].ravel()
    return CVResult(metrics, threshold_at_false_alarm_rate(normal, target_far), normal)


def oof_threshold(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray, *,
                  target_far: float, n_splits: int = 5, random_state: int = 42) -> float:
    """Threshold from one stratified k-fold's out-of-fold scores of passing rows."""
    y = np.asarray(y).astype(int)
    oof = np.empty(len(y))
    for train, test in StratifiedKFold(n_splits, shuffle=True,
                                       random_state=random_state).split(X, y):
        oof[test] = make_detector().fit(X[train], y[train]).score(X[test])
    return threshold_at_false_alarm_rate(oof[y == 0], target_far)


def time_split(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray, order: np.ndarray,
               *, train_fraction: float = 0.75, target_far: float = 0.05,
               random_state: int = 42) -> dict:
    """Train on the earliest ``train_fraction`` of rows (by ``order``), test on the rest.

    The threshold comes from out-of-fold scores inside the training part only.
    """
    y = np.asarray(y).astype(int)
    ranked = np.argsort(order, kind="stable")
    cut = int(round(train_fraction * len(y)))
    train, test = ranked[:cut], ranked[cut:]
    threshold = oof_threshold(make_detector, X[train], y[train], target_far=target_far,
                              random_state=random_state)
    scores = make_detector().fit(X[train], y[train]).score(X[test])
    metrics = {k: round(v, 4) for k, v in binary_metrics(y[test], scores, threshold).items()}
    metrics.update(protocol=f"earliest {train_fraction:.0%} of wafers by timestamp to train, "
                            f"latest {1 - train_fraction:.0%} to test; threshold from "
                            f"out-of-fold scores inside the training part",
                   n_train=int(len(train)), n_test=int(len(test)),
                   n_test_fail=int(y[test].sum()),
                   test_false_alarm_rate=round(false_alarm_rate(scores[y[test] == 0], threshold), 4))
    return metrics


def score_quantiles(normal_scores: np.ndarray, n: int = 101) -> list[float]:
    """Quantiles of normal scores, so a page can say what share of good items a threshold flags."""
    return [float(q) for q in np.quantile(np.asarray(normal_scores), np.linspace(0, 1, n))]


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.evaluate <module> --data DIR``: print the evaluation JSON."""
    from pipelines.train import run_cli

    return run_cli(argv, evaluate_only=True)


if __name__ == "__main__":
    raise SystemExit(main())
