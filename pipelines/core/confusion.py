"""Multiclass figures from a confusion matrix, in numpy alone (the web app serves without
scikit-learn): accuracy, macro-F1, per-class precision, recall, F1 and support.

A class with no predictions (or no true maps) scores 0 where its ratio is undefined, as
scikit-learn's ``zero_division=0`` does.
"""
from __future__ import annotations

import numpy as np


def confusion_counts(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts: rows true class, columns predicted class."""
    y, predicted = np.asarray(y, dtype=int), np.asarray(predicted, dtype=int)
    return np.bincount(y * n_classes + predicted,
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(len(a), dtype=float), where=b > 0)


def multiclass_report(y: np.ndarray, predicted: np.ndarray, classes: list[str],
                      macro_over_present: bool = False) -> dict:
    """``{"accuracy", "macro_f1", "macro_classes", "per_class": {class: {precision, recall, f1,
    support}}, "confusion_matrix"}`` for true classes ``y`` and ``predicted`` (indices into
    ``classes``).

    Macro-F1 averages every class (a test split holds them all), or with ``macro_over_present``
    only the classes that are true or predicted at least once, as scikit-learn does without
    ``labels`` (a batch of a few maps should not count the classes it never mentions as 0).
    """
    matrix = confusion_counts(y, predicted, len(classes))
    hits = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    precision = _ratio(hits, matrix.sum(axis=0).astype(float))
    recall = _ratio(hits, support.astype(float))
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = int(matrix.sum())
    counted = (support + matrix.sum(axis=0) > 0) if macro_over_present \
        else np.ones(len(classes), dtype=bool)
    return {
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "macro_f1": float(f1[counted].mean()) if counted.any() else 0.0,
        "macro_classes": int(counted.sum()),
        "per_class": {c: {"precision": float(precision[k]), "recall": float(recall[k]),
                          "f1": float(f1[k]), "support": int(support[k])}
                      for k, c in enumerate(classes)},
        "confusion_matrix": matrix.tolist(),
    }
