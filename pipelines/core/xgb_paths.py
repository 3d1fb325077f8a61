"""XGBoost's tree-path (Saabas) contributions, bit for bit, from each row's leaves.

``Booster.predict(m, pred_contribs=True, approx_contribs=True)`` walks each row down each tree
and credits every split on the path with the change in the node's mean value
(``CalculateContributionsApprox``), but for every tree it also clears and adds a whole row of
``features + 1`` floats. With 400 trees and 446 features that dense add is nearly all of its
cost: about 90 ms per 2,000 rows, twice the time to parse them.

The path a row takes is fixed by the leaf it reaches, so each leaf's credits are known in
advance: at most one per feature on its path (merged in path order when a feature splits
twice, as XGBoost does per tree). :class:`PathContributions` asks XGBoost only for the leaves
(``pred_leaf``: the same DMatrix and the same split rule, missing values included) and adds
each tree's credits in tree order in float32 (``np.add.at`` adds in index order), which is
exactly XGBoost's arithmetic: the result equals its ``approx_contribs`` output bit for bit,
bias column included (taken from XGBoost itself).

Only plain ``gbtree`` models with one output and numeric splits qualify
(:func:`path_contributions` returns None for the rest: dart's tree weights, multi-class,
categorical splits), and each one is checked against XGBoost on probe rows through every
tree's thresholds, missing values too, when it is built; a mismatch returns None, so callers
fall back to XGBoost's own pass and stay exact.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import xgboost as xgb

logger = logging.getLogger(__name__)

ROW_BLOCK = 512  # rows added at a time: (rows x trees x slots) int32 + float32, ~5 MB
PROBE_ROWS = 64


class PathContributions:
    """``booster``'s tree-path contributions from its leaves; call with a DMatrix.

    Built once per booster (about 20 ms for 400 trees); thread-safe after that.
    """

    def __init__(self, booster: xgb.Booster, trees: list[dict], n_features: int):
        self.booster = booster
        self.n_features = n_features
        sizes = [len(t["left_children"]) for t in trees]
        self.offsets = np.cumsum([0] + sizes[:-1]).astype(np.int32)
        paths = [_leaf_paths(t) for t in trees]
        slots = max((len(p) for tree in paths for p in tree.values()), default=0)
        self.slots = max(slots, 1)
        total = int(sum(sizes))
        # per node (leaves only are ever looked up): the features credited and by how much;
        # unused slots point at the bias column with +0.0, which the bias then overwrites
        self.feature = np.full((total, self.slots), n_features, dtype=np.int32)
        self.credit = np.zeros((total, self.slots), dtype=np.float32)
        for offset, tree in zip(self.offsets, paths):
            for leaf, credits in tree.items():
                for s, (feature, credit) in enumerate(credits.items()):
                    self.feature[offset + leaf, s] = feature
                    self.credit[offset + leaf, s] = credit
        self.bias = np.float32(0.0)

    def __call__(self, matrix: xgb.DMatrix) -> np.ndarray:
        """(rows, features + 1) float32, equal to ``approx_contribs`` on ``matrix``."""
        leaves = self.booster.predict(matrix, pred_leaf=True)
        leaves = leaves.reshape(len(leaves), -1)
        if leaves.shape[1] != len(self.offsets):
            raise ValueError(f"{leaves.shape[1]} leaves per row for {len(self.offsets)} trees")
        width = self.n_features + 1
        out = np.zeros((len(leaves), width), dtype=np.float32)
        for start in range(0, len(leaves), ROW_BLOCK):
            block = leaves[start:start + ROW_BLOCK].astype(np.int32)
            block += self.offsets
            n = len(block)
            # (rows, trees, slots): trees in order within each row, so each cell of ``out``
            # receives its credits in tree order, the order XGBoost adds them in
            index = self.feature.take(block, axis=0).reshape(n, -1)
            index += (np.arange(n, dtype=np.int32) * width)[:, None]
            np.add.at(out[start:start + n].reshape(-1), index.reshape(-1),
                      self.credit.take(block, axis=0).reshape(-1))
        out[:, self.n_features] = self.bias
        return out


def path_contributions(booster: xgb.Booster) -> PathContributions | None:
    """A :class:`PathContributions` for ``booster``, or None where it would not be exact (a
    kind of model it does not cover, a model file it cannot read, or a probe that differs
    from XGBoost's own)."""
    try:
        return _checked(booster)
    except Exception:  # a layout it does not know (another XGBoost): XGBoost's pass is exact
        logger.warning("tree-path contributions from the leaves are unavailable: using "
                       "XGBoost's own (slower) pass", exc_info=True)
        return None


def _checked(booster: xgb.Booster) -> PathContributions | None:
    model = json.loads(booster.save_raw("json"))["learner"]
    params = model["learner_model_param"]
    gbm = model["gradient_booster"]
    if gbm.get("name") != "gbtree" or int(params.get("num_class", 0)) > 1 \
            or int(params.get("num_target", 1)) != 1:
        return None
    trees = gbm["model"]["trees"]
    if not trees or any(gbm["model"]["tree_info"]) or any(
            any(t.get("split_type", [])) or t.get("categories")
            or int(t["tree_param"].get("size_leaf_vector", 1)) > 1 for t in trees):
        return None
    n_features = int(params["num_feature"])
    paths = PathContributions(booster, trees, n_features)
    probe = xgb.DMatrix(_probe_rows(trees, n_features), nthread=1,
                        feature_names=booster.feature_names, feature_types=booster.feature_types)
    expected = booster.predict(probe, pred_contribs=True, approx_contribs=True)
    paths.bias = expected[0, n_features]  # the same for every row: means of roots + base score
    got = paths(probe)
    if got.shape != expected.shape or not np.array_equal(got.view(np.int32),
                                                         expected.view(np.int32)):
        logger.warning("tree-path contributions differ from XGBoost's on probe rows: "
                       "using XGBoost's own (slower) pass")
        return None
    return paths


def _node_means(tree: dict) -> list[np.float32]:
    """Each node's mean value, computed as XGBoost does (``FillNodeMeanValues``, float32):
    a leaf's value; else the children's means weighted by their hessian sums."""
    left, right = tree["left_children"], tree["right_children"]
    value = np.asarray(tree["split_conditions"], dtype=np.float32)  # a leaf's value there
    hess = np.asarray(tree["sum_hessian"], dtype=np.float32)
    means: list[np.float32] = [np.float32(0.0)] * len(left)
    order = []  # children before parents
    stack = [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if left[node] != -1:
            stack += [left[node], right[node]]
    for node in reversed(order):
        if left[node] == -1:
            means[node] = value[node]
        else:
            a, b = left[node], right[node]
            total = np.float32(means[a] * hess[a]) + np.float32(means[b] * hess[b])
            means[node] = np.float32(np.float32(total) / hess[node])
    return means


def _leaf_paths(tree: dict) -> dict[int, dict[int, np.float32]]:
    """Per leaf: ``{feature: credit}`` in path order, as one tree adds them for a row
    (``CalculateContributionsApprox``: each split's feature gets child mean - node mean; the
    last step, leaf value - leaf mean, is zero)."""
    left, right = tree["left_children"], tree["right_children"]
    feature = tree["split_indices"]
    means = _node_means(tree)
    out = {}
    stack: list[tuple[int, dict]] = [(0, {})]
    while stack:
        node, credits = stack.pop()
        if left[node] == -1:
            out[node] = credits
            continue
        for child in (left[node], right[node]):
            step = dict(credits)
            f = int(feature[node])
            step[f] = np.float32(step.get(f, np.float32(0.0)) +
                                 np.float32(means[child] - means[node]))
            stack.append((child, step))
    return out


def _probe_rows(trees: list[dict], n_features: int) -> np.ndarray:
    """Rows that go down many paths: each feature at one of its thresholds (goes right), just
    below one (goes left) or missing (the default way), drawn at random (seeded)."""
    thresholds: dict[int, list[float]] = {}
    for tree in trees:
        for node, (f, t) in enumerate(zip(tree["split_indices"], tree["split_conditions"])):
            if tree["left_children"][node] != -1:
                thresholds.setdefault(int(f), []).append(float(np.float32(t)))
    rng = np.random.default_rng(0)
    rows = np.zeros((PROBE_ROWS, n_features), dtype=np.float32)
    for f, values in thresholds.items():
        picked = np.asarray(values, dtype=np.float32)[rng.integers(len(values), size=PROBE_ROWS)]
        way = rng.integers(3, size=PROBE_ROWS)
        below = np.nextafter(picked, np.float32(-np.inf))
        rows[:, f] = np.where(way == 0, picked, np.where(way == 1, below, np.nan))
    return rows
