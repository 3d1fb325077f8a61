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
from sklearn.metrics import (average_precision_score, balanced_accuracy_score,
                             mean_absolute_error, precision_recall_fscore_support, r2_score,
                             roc_auc_score)
from sklearn.model_selection import (GroupKFold, RepeatedStratifiedKFold, StratifiedKFold,
                                     TimeSeriesSplit)

from pipelines.core.confusion import multiclass_report
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


def grouped(n_splits: int = 5, n_repeats: int = 1, random_state: int = 42,
            group_name: str = "group") -> Splitter:
    """K-fold over groups (machines, days): every row of a group lands in the same fold.

    One repeat keeps scikit-learn's deterministic size-balanced assignment; more repeats
    shuffle the groups afresh each time. ``group_name`` ("day") only words the description.
    """
    def split(X, y, groups=None):
        if groups is None:
            raise ValueError("a grouped split needs groups (one id per row)")
        for repeat in range(n_repeats):
            folds = GroupKFold(n_splits=n_splits) if n_repeats == 1 else \
                GroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state + repeat)
            for train, test in folds.split(X, y, groups):
                yield repeat, train, test
    times = f" x {n_repeats}" if n_repeats > 1 else ""
    split.description = (f"{group_name}-blocked {n_splits}-fold{times} "
                         f"(every {group_name}'s rows in one fold)")
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
    probabilities = np.asarray(probabilities)
    names = classes or [str(c) for c in range(probabilities.shape[1])]
    return multiclass_report(np.asarray(y).astype(int), probabilities.argmax(axis=1), names)


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
               splitter: Splitter | None = None, unit: str = "rows",
               clusters: np.ndarray | None = None, cluster_unit: str | None = None,
               bootstrap: "Bootstrap | None" = None) -> dict:
    """Binary task: train on the earliest ``train_fraction`` of rows (by ``order``), test on the rest.

    The threshold comes from out-of-fold scores inside the training part only (``splitter``,
    grouped by ``clusters`` when given). With ``clusters`` (days) the cut moves to the next
    cluster boundary; with ``bootstrap`` the metrics carry intervals. ``unit`` names the rows
    in the protocol text ("wafers").
    """
    y = np.asarray(y).astype(int)
    (train, test), = origins(order, 1, train_fraction, clusters)
    scores, threshold = fit_on_past(make_detector, X, y, train, test, target_far=target_far,
                                    inner_splitter=splitter or stratified(),
                                    inner_groups=clusters)
    if bootstrap is None:
        metrics = {k: round(v, 4) for k, v in binary_metrics(y[test], scores, threshold).items()}
        metrics["false_alarm_rate"] = round(false_alarm_rate(scores[y[test] == 0], threshold), 4)
        intervals = ""
    else:
        metrics, _ = pooled_metrics(y[test], scores, scores >= threshold, bootstrap=bootstrap,
                                    clusters=None if clusters is None else
                                    np.asarray(clusters)[test])
        metrics.pop("n_repeats")
        metrics = {"label": "time split", "optimistic": False, **metrics}
        intervals = "; " + bootstrap.describe("the test scores", cluster_unit)
    cut_note = f" (the cut falls between two {cluster_unit})" if cluster_unit else ""
    metrics.update(protocol=f"earliest {len(train) / len(y):.0%} of {unit} by timestamp to train, "
                            f"latest {len(test) / len(y):.0%} to test"
                            f"{cut_note}"
                            f"; threshold from out-of-fold scores inside the training part"
                            + intervals,
                   n_train=int(len(train)), n_test=int(len(test)),
                   n_test_fail=int(y[test].sum()))
    return metrics


# -- bootstrap confidence intervals ---------------------------------------------------------
@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap over rows, or over whole clusters (days) when clusters are given.

    Resampling is drawn as multinomial weights, one row of weights per resample; the same
    seed and clusters give the same weights, so two models scored on the same rows are
    compared on the same resamples (a paired bootstrap).
    """

    n_resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def weights(self, n_rows: int, clusters: np.ndarray | None = None) -> np.ndarray:
        """(resamples, rows) weights: how often each row is drawn in each resample."""
        rng = np.random.default_rng(self.seed)
        if clusters is None:
            return rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows),
                                   size=self.n_resamples).astype(np.float32)
        codes, inverse = np.unique(np.asarray(clusters), return_inverse=True)
        counts = rng.multinomial(len(codes), np.full(len(codes), 1.0 / len(codes)),
                                 size=self.n_resamples).astype(np.float32)
        return counts[:, inverse]

    def interval(self, replicates: np.ndarray) -> list[float]:
        """The central ``confidence`` percentile interval of replicates (NaN ones skipped)."""
        tail = 50.0 * (1.0 - self.confidence)
        lo, hi = np.nanpercentile(np.asarray(replicates, dtype=float), [tail, 100.0 - tail])
        return [round(float(lo), 4), round(float(hi), 4)]

    def describe(self, what: str, unit: str | None) -> str:
        """Protocol text: what was resampled and how."""
        return (f"{self.confidence:.0%} intervals: percentile bootstrap ({self.n_resamples} "
                f"resamples) of {what}, resampling whole {unit}" if unit else
                f"{self.confidence:.0%} intervals: percentile bootstrap ({self.n_resamples} "
                f"resamples) of {what}, resampling rows")


def ranking_metrics(y: np.ndarray, scores: np.ndarray, weights: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ROC-AUC and average precision (PR-AUC) for each row of ``weights``.

    ``weights`` is (resamples, rows); a row of ones gives scikit-learn's ``roc_auc_score``
    and ``average_precision_score`` (ties handled the same way). Vectorised over resamples:
    one sort, two cumulative sums. A resample without both classes gives NaN.
    """
    y = np.asarray(y).astype(bool)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    sorted_scores = np.asarray(scores, dtype=float)[order]
    w = np.atleast_2d(weights)[:, order].astype(float)
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), len(order) - 1]  # tie groups
    true_pos = np.cumsum(w * y[order], axis=1)[:, ends]
    false_pos = np.cumsum(w * ~y[order], axis=1)[:, ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = true_pos / true_pos[:, -1:]
        fpr = false_pos / false_pos[:, -1:]
        zeros = np.zeros((len(w), 1))
        tpr0, fpr0 = np.hstack([zeros, tpr]), np.hstack([zeros, fpr])
        roc = np.sum(np.diff(fpr0, axis=1) * (tpr0[:, 1:] + tpr0[:, :-1]) / 2.0, axis=1)
        precision = true_pos / np.maximum(true_pos + false_pos, np.finfo(float).tiny)
        ap = np.sum(np.diff(tpr0, axis=1) * precision, axis=1)
    return roc, ap


def rates_at_threshold(y: np.ndarray, flagged: np.ndarray, weights: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted false-alarm rate (flagged share of label 0) and recall (of label 1) per resample."""
    y = np.asarray(y).astype(bool)
    w = np.atleast_2d(weights).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        far = (w[:, ~y] @ flagged[~y].astype(float)) / w[:, ~y].sum(axis=1)
        recall = (w[:, y] @ flagged[y].astype(float)) / w[:, y].sum(axis=1)
    return far, recall


CI_METRICS = ("roc_auc", "pr_auc", "false_alarm_rate", "recall")

@dataclass
class ProtocolResult:
    """One protocol's JSON-ready metrics plus what later steps need.

    ``replicates`` holds each :data:`CI_METRICS` metric's bootstrap replicates (for paired
    comparisons between models scored on the same rows); ``normal_scores`` and ``threshold``
    are the pooled out-of-fold scores of label-0 rows and the threshold set on them.
    """

    metrics: dict
    replicates: dict[str, np.ndarray]
    normal_scores: np.ndarray | None = None
    threshold: float | None = None


def pooled_metrics(y: np.ndarray, scores: np.ndarray, flagged: np.ndarray, *,
                   bootstrap: Bootstrap, clusters: np.ndarray | None = None
                   ) -> tuple[dict, dict[str, np.ndarray]]:
    """Metrics of pooled scores and decisions, both (repeats, rows).

    Point values are means over repeats of each repeat's pooled metric; bootstrap replicates
    are taken the same way on shared resample weights, so the interval is that of the mean.
    """
    y = np.asarray(y).astype(int)
    scores, flagged = np.atleast_2d(scores), np.atleast_2d(flagged).astype(bool)
    ones = np.ones((1, len(y)))
    weights = bootstrap.weights(len(y), clusters)
    point: dict[str, list[float]] = {k: [] for k in CI_METRICS}
    reps: dict[str, list[np.ndarray]] = {k: [] for k in CI_METRICS}
    extra: list[dict[str, float]] = []
    for s, f in zip(scores, flagged):
        for keys, fn, arg in ((("roc_auc", "pr_auc"), ranking_metrics, s),
                              (("false_alarm_rate", "recall"), rates_at_threshold, f)):
            for key, p, r in zip(keys, fn(y, arg, ones), fn(y, arg, weights)):
                point[key].append(float(p[0]))
                reps[key].append(r)
        precision, _, f1, _ = precision_recall_fscore_support(
            y, f.astype(int), average="binary", pos_label=1, zero_division=0)
        extra.append({"precision": float(precision), "f1": float(f1),
                      "balanced_accuracy": float(balanced_accuracy_score(y, f.astype(int)))})
    replicates = {k: np.mean(reps[k], axis=0) for k in CI_METRICS}
    metrics: dict = {}
    for key in CI_METRICS:
        metrics[key] = round(float(np.mean(point[key])), 4)
        metrics[f"{key}_ci"] = bootstrap.interval(replicates[key])
    metrics["base_rate"] = round(float(y.mean()), 4)
    metrics |= {k: round(float(np.mean([e[k] for e in extra])), 4) for k in extra[0]}
    metrics.update(n_rows=int(len(y)), n_fail=int(y.sum()), n_repeats=int(len(scores)))
    return metrics, replicates


def out_of_fold(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray,
                splitter: Splitter, groups: np.ndarray | None = None,
                progress: Callable[[str], None] | None = None) -> np.ndarray:
    """(repeats, rows) out-of-fold scores: each fold's detector fitted on the other folds only."""
    splits = list(splitter(X, y, groups))
    oof = np.full((1 + max(r for r, _, _ in splits), len(y)), np.nan)
    for k, (repeat, train, test) in enumerate(splits):
        oof[repeat, test] = make_detector().fit(X[train], y[train]).score(X[test])
        if progress:
            progress(f"fold {k + 1}/{len(splits)}")
    if np.isnan(oof).any():
        raise ValueError("the splitter left rows unscored in some repeat")
    return oof


def cross_validate_binary(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray, *,
                          splitter: Splitter, groups: np.ndarray | None = None,
                          clusters: np.ndarray | None = None, cluster_unit: str | None = None,
                          target_far: float = 0.05, bootstrap: Bootstrap = Bootstrap(),
                          label: str = "cross-validation", optimistic: bool = False,
                          progress: Callable[[str], None] | None = None) -> ProtocolResult:
    """Binary CV with pooled out-of-fold metrics and bootstrap intervals.

    Each repeat's out-of-fold scores are pooled; its threshold is set at ``target_far`` of
    its own label-0 scores (so the false-alarm rate here is met by construction). The
    returned threshold comes from every repeat's label-0 scores. ``clusters`` (days) are the
    bootstrap's resampling unit; ``optimistic`` marks protocols that leak time structure.
    """
    y = np.asarray(y).astype(int)
    oof = out_of_fold(make_detector, X, y, splitter, groups, progress)
    thresholds = np.array([threshold_at_false_alarm_rate(s[y == 0], target_far) for s in oof])
    metrics, replicates = pooled_metrics(y, oof, oof >= thresholds[:, None],
                                         bootstrap=bootstrap, clusters=clusters)
    metrics = {"label": label, "optimistic": optimistic, **metrics,
               "protocol": f"{splitter.description}, every fitted step inside the folds; "
                           f"metrics on the pooled out-of-fold scores of each repeat (mean over "
                           f"repeats); threshold at {target_far:.0%} of that repeat's passing "
                           f"out-of-fold scores; "
                           + bootstrap.describe("the pooled out-of-fold scores", cluster_unit)}
    normal = oof[:, y == 0].ravel()
    return ProtocolResult(metrics, replicates, normal,
                          threshold_at_false_alarm_rate(normal, target_far))


def fit_on_past(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray,
                train: np.ndarray, test: np.ndarray, *, target_far: float,
                inner_splitter: Splitter, inner_groups: np.ndarray | None = None
                ) -> tuple[np.ndarray, float]:
    """Fit on ``train`` rows, score ``test`` rows; threshold from out-of-fold scores inside ``train``."""
    threshold = oof_threshold(make_detector, X[train], y[train], target_far=target_far,
                              splitter=inner_splitter,
                              groups=None if inner_groups is None else inner_groups[train])
    return make_detector().fit(X[train], y[train]).score(X[test]), threshold


def origins(order: np.ndarray, n_origins: int, first_train_fraction: float,
            clusters: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs: train on every row before a cut, test on the next block.

    Cuts fall at ``first_train_fraction`` of the rows (by ``order``) and then evenly up to
    the end; with ``clusters`` (days) a cut moves forward to the next cluster boundary so no
    cluster sits on both sides.
    """
    ranked = np.argsort(np.asarray(order), kind="stable")
    n = len(ranked)
    step = (1.0 - first_train_fraction) / n_origins
    cuts = [int(round((first_train_fraction + k * step) * n)) for k in range(n_origins)] + [n]
    if clusters is not None:
        c = np.asarray(clusters)[ranked]
        boundary = np.r_[True, c[1:] != c[:-1], True]  # a cut at i is clean when boundary[i]
        cuts = [int(np.flatnonzero(boundary[cut:])[0] + cut) for cut in cuts]
    pairs = [(ranked[:a], ranked[a:b]) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    if not pairs:
        raise ValueError("no rolling origin has a test block")
    return pairs


def rolling_origin(make_detector: DetectorFactory, X: np.ndarray, y: np.ndarray,
                   order: np.ndarray, *, n_origins: int = 4, first_train_fraction: float = 0.5,
                   clusters: np.ndarray | None = None, cluster_unit: str | None = None,
                   target_far: float = 0.05, inner_splitter: Splitter | None = None,
                   bootstrap: Bootstrap = Bootstrap(), unit: str = "rows",
                   progress: Callable[[str], None] | None = None) -> ProtocolResult:
    """Rolling-origin evaluation: several origins, each trained on all earlier rows.

    Each origin's detector and threshold (from out-of-fold scores inside its training part)
    see only rows before its cut; its test block is the next rows. Test blocks are pooled:
    ROC-AUC and PR-AUC over all blocks' scores, false-alarm rate and recall from each block
    decided at its own origin's threshold. Per-origin figures are listed too.
    """
    y = np.asarray(y).astype(int)
    inner = inner_splitter or stratified()
    pairs = origins(order, n_origins, first_train_fraction, clusters)
    tested, scores, flagged, per_origin = [], [], [], []
    for k, (train, test) in enumerate(pairs):
        s, threshold = fit_on_past(make_detector, X, y, train, test, target_far=target_far,
                                   inner_splitter=inner, inner_groups=clusters)
        tested.append(test)
        scores.append(s)
        flagged.append(s >= threshold)  # each block decided at its own origin's threshold
        yt = y[test]
        per_origin.append({
            "n_train": int(len(train)), "n_test": int(len(test)), "n_test_fail": int(yt.sum()),
            "roc_auc": round(float(roc_auc_score(yt, s)), 4) if 0 < yt.sum() < len(yt) else None,
            "false_alarm_rate": round(false_alarm_rate(s[yt == 0], threshold), 4),
            "recall": round(float((s[yt == 1] >= threshold).mean()), 4) if yt.sum() else None})
        if progress:
            progress(f"origin {k + 1}/{len(pairs)}")
    rows = np.concatenate(tested)
    metrics, replicates = pooled_metrics(
        y[rows], np.concatenate(scores), np.concatenate(flagged), bootstrap=bootstrap,
        clusters=None if clusters is None else np.asarray(clusters)[rows])
    metrics.pop("n_repeats")
    metrics = {"label": "rolling origin", "optimistic": False, **metrics,
               "protocol": f"rolling origin over time: {len(pairs)} origins; each trains on every "
                           f"{unit[:-1] if unit.endswith('s') else unit} before its cut "
                           f"(the first at {first_train_fraction:.0%} of the {unit}) and tests on "
                           f"the next block; threshold from out-of-fold scores inside each "
                           f"training part; metrics on the pooled test blocks; "
                           + bootstrap.describe("the pooled test-block scores", cluster_unit),
               "origins": per_origin}
    return ProtocolResult(metrics, replicates)


# -- choosing a model -------------------------------------------------------------------------
def paired_difference(a: np.ndarray, b: np.ndarray, bootstrap: Bootstrap) -> list[float]:
    """Bootstrap interval of ``a - b`` from replicates drawn on the same resamples."""
    return bootstrap.interval(np.asarray(a) - np.asarray(b))


def choose_model(candidates: dict[str, dict[str, ProtocolResult]], complexity: dict[str, int], *,
                 protocols: tuple[str, ...], metric: str = "roc_auc",
                 bootstrap: Bootstrap = Bootstrap()) -> tuple[str, dict]:
    """Pick a model by a stated rule; return its name and the record of each step.

    1. Each candidate's criterion is the mean of ``metric`` over ``protocols``.
    2. Walking down the ranking from the leader, a candidate is tied while the 95%
       paired-bootstrap interval of (leader - candidate) includes 0; the walk stops at the
       first clear loser, so every tied candidate ranks above every excluded one.
    3. The simplest tied candidate (lowest ``complexity``; then the better criterion) wins.
    """
    if not candidates:
        raise ValueError("no candidate to choose from")

    def criterion(name: str) -> float:
        return float(np.mean([candidates[name][p].metrics[metric] for p in protocols]))

    def replicates(name: str) -> np.ndarray:
        return np.mean([candidates[name][p].replicates[metric] for p in protocols], axis=0)

    ranking = sorted(candidates, key=criterion, reverse=True)
    leader = ranking[0]
    differences = {n: paired_difference(replicates(leader), replicates(n), bootstrap)
                   for n in ranking[1:]}
    tied = [leader]
    for name in ranking[1:]:
        if differences[name][0] > 0.0:
            break
        tied.append(name)
    chosen = min(tied, key=lambda n: (complexity[n], -criterion(n)))
    record = {
        "rule": (f"criterion: mean {metric} over {', '.join(protocols)}; walking down the "
                 f"ranking, a candidate is tied with the leader while the "
                 f"{bootstrap.confidence:.0%} paired-bootstrap interval of (leader - candidate) "
                 f"includes 0 (the walk stops at the first clear loser); the simplest tied "
                 f"candidate wins"),
        "criterion": {n: round(criterion(n), 4) for n in ranking},
        "leader": leader, "difference_to_leader": differences, "tied": tied,
        "complexity": {n: complexity[n] for n in ranking}, "chosen": chosen}
    return chosen, record
