"""Active learning: which unlabelled items a person should label next (numpy only).

One source for the review queue the web app shows (``webapp/annotation``) and the simulation
that measures the labels it saves (``python -m pipelines.active_learning simulate``):

- **uncertainty** of a classifier: :func:`margin_uncertainty`, one minus the gap between the
  two most probable classes (1: a coin toss between two classes, 0: certain), or
  :func:`entropy_uncertainty`; of a score against a threshold: :func:`threshold_uncertainty`,
  from the score's distance to the threshold in units of the normal scores' spread;
- **diversity** (:func:`diverse_order`): the most uncertain ``candidates x per_round`` items
  are clustered into ``per_round`` groups by their features (k-means, k-means++ start), and the
  order takes one item from each group per round, the most uncertain of the group first, so the
  head of the order is never a run of near-copies of one item; the items left over follow in
  order of uncertainty. Zhdanov's "diverse mini-batch active learning" (2019) is the model.
"""
from __future__ import annotations

import numpy as np

MAX_CLUSTERS = 256  # a round never has more groups than this (k-means stays cheap)


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """(items,) ``1 - (p_first - p_second)`` of each row of class probabilities, in [0, 1]."""
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError("probabilities must be (items, classes) with at least 2 classes")
    top = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - np.abs(top[:, 1] - top[:, 0])


def entropy_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """(items,) the entropy of each row over log(classes), in [0, 1]."""
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])


def threshold_distance(scores, threshold: float, spread: float) -> np.ndarray:
    """|score - threshold| in units of ``spread`` (the normal scores' standard deviation)."""
    if not np.isfinite(spread) or spread <= 0:
        raise ValueError(f"the score's spread must be a positive number, got {spread!r}")
    return np.abs(np.asarray(scores, dtype=float) - float(threshold)) / float(spread)


def threshold_uncertainty(scores, threshold: float, spread: float) -> np.ndarray:
    """``1 / (1 + distance)``: 1 at the threshold, towards 0 far from it on either side."""
    return 1.0 / (1.0 + threshold_distance(scores, threshold, spread))


def spread_of(quantiles) -> float:
    """The spread of a score from its equally spaced quantiles (a manifest's
    ``normal_score_quantiles``): their standard deviation, or 1 when they are all equal."""
    q = np.asarray(quantiles, dtype=float)
    q = q[np.isfinite(q)]
    spread = float(q.std()) if q.size > 1 else 0.0
    return spread if spread > 0 else 1.0


def standardised(features: np.ndarray) -> np.ndarray:
    """Each column centred and scaled to unit spread (a constant column becomes 0)."""
    X = np.asarray(features, dtype=np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def kmeans(X: np.ndarray, k: int, *, seed: int = 0, iterations: int = 15) -> np.ndarray:
    """Cluster of each row of ``X`` (k-means, k-means++ start, ``iterations`` Lloyd steps)."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    k = max(1, min(int(k), n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    norms = (X ** 2).sum(axis=1)
    centres = np.empty((k, X.shape[1]))
    centres[0] = X[rng.integers(n)]
    nearest = ((X - centres[0]) ** 2).sum(axis=1)
    for j in range(1, k):
        total = nearest.sum()
        pick = rng.choice(n, p=nearest / total) if total > 0 else rng.integers(n)
        centres[j] = X[pick]
        nearest = np.minimum(nearest, ((X - centres[j]) ** 2).sum(axis=1))
    assign = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        distances = norms[:, None] - 2 * X @ centres.T + (centres ** 2).sum(axis=1)[None, :]
        new = distances.argmin(axis=1)
        if _ and np.array_equal(new, assign):
            break
        assign = new
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, X)
        counts = np.bincount(assign, minlength=k)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return assign


def clustered(uncertainty, *, per_round: int, candidates: int = 4) -> np.ndarray:
    """Indices of the items :func:`diverse_order` clusters (the only ones whose features it
    reads): the ``candidates x per_round`` most uncertain, most uncertain first; none when
    ``per_round`` is 1 or less."""
    u = np.asarray(uncertainty, dtype=float)
    if not len(u) or per_round <= 1:
        return np.zeros(0, dtype=np.int64)
    return np.argsort(-u, kind="stable")[:max(1, candidates) * per_round]


def diverse_order(uncertainty, features, *, per_round: int, candidates: int = 4,
                  seed: int = 0) -> np.ndarray:
    """Indices of every item, in the order to label them (see the module doc).

    ``uncertainty`` (items,), higher first; ``features`` (items, d), compared after
    :func:`standardised`; ``per_round``: the groups of one round (the head of the order holds
    one item of each, at most :data:`MAX_CLUSTERS`); ``candidates``: how many times
    ``per_round`` of the most uncertain items are clustered. Ties in uncertainty keep the
    items' own order.
    """
    by_uncertainty = np.argsort(-np.asarray(uncertainty, dtype=float), kind="stable")
    pool = clustered(uncertainty, per_round=per_round, candidates=candidates)
    if not len(pool):
        return by_uncertainty
    groups = kmeans(standardised(np.asarray(features)[pool]),
                    min(per_round, MAX_CLUSTERS, len(pool)), seed=seed)
    # rank of each pooled item inside its group (the pool is in uncertainty order)
    rank = np.zeros(len(pool), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, g in enumerate(groups.tolist()):
        rank[i] = seen.get(g, 0)
        seen[g] = rank[i] + 1
    # round first, then uncertainty (the pool's position) within the round
    head = pool[np.lexsort((np.arange(len(pool)), rank))]
    return np.concatenate([head, by_uncertainty[len(pool):]])


def stratified_sample(labels, size: int, *, minimum: int = 2, seed: int = 0) -> np.ndarray:
    """Indices of about ``size`` items drawn by class: each class its share of ``size``
    (at least ``minimum``, or all it has), so a small sample still holds every class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    want = np.maximum(minimum, np.round(counts / counts.sum() * size).astype(int))
    picks = [rng.choice(np.flatnonzero(labels == c), min(w, n), replace=False)
             for c, w, n in zip(classes, want, counts)]
    return np.sort(np.concatenate(picks))
