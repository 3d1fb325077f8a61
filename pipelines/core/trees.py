"""Fitted scikit-learn tree ensembles as plain node arrays, and a vectorised walk over them.

Serving never needs scikit-learn or pickle: a forest is stored as arrays (``TREE_ARRAYS``:
split feature, threshold, children and a value per node, in one ``npz``) and every row walks
every tree at once. Used by the sensor Extra Trees and the time-series Isolation Forest.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TREE_ARRAYS = ("roots", "feature", "threshold", "left", "right", "value")


def flatten(trees: Sequence, values: Sequence[np.ndarray],
            feature_maps: Sequence[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every tree's nodes in one set of arrays; children are global node indices, -1 at leaves.

    ``trees`` are scikit-learn ``Tree`` objects (``estimator.tree_``), ``values`` one array of
    node values per tree; ``feature_maps`` turn a tree's feature index into a column of the
    input (bagging ensembles that fit each tree on a subset or permutation of the columns).
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in TREE_ARRAYS}
    offset = 0
    for k, tree in enumerate(trees):
        leaf = tree.children_left < 0
        feature = np.where(leaf, 0, tree.feature)
        if feature_maps is not None:
            feature = np.where(leaf, 0, np.asarray(feature_maps[k])[feature])
        parts["roots"].append(np.array([offset]))
        parts["feature"].append(feature)
        parts["threshold"].append(tree.threshold)
        parts["left"].append(np.where(leaf, -1, tree.children_left + offset))
        parts["right"].append(np.where(leaf, -1, tree.children_right + offset))
        parts["value"].append(np.asarray(values[k], dtype=np.float64))
        offset += tree.node_count
    dtypes = {"roots": np.int32, "feature": np.int32, "threshold": np.float64,
              "left": np.int32, "right": np.int32, "value": np.float64}
    return {k: np.concatenate(v).astype(dtypes[k]) for k, v in parts.items()}


def node_depths(tree) -> np.ndarray:
    """Depth of every node of a scikit-learn ``Tree`` (the root is 0)."""
    depth = np.zeros(tree.node_count, dtype=np.int64)
    for node in range(tree.node_count):  # children always come after their parent
        for child in (tree.children_left[node], tree.children_right[node]):
            if child >= 0:
                depth[child] = depth[node] + 1
    return depth


def walk(trees: dict[str, np.ndarray], features: np.ndarray,
         contributions: np.ndarray | None = None) -> np.ndarray:
    """(rows, trees) leaf index of each row in each tree; a float32 row goes left when <= threshold.

    With ``contributions`` (rows, features), each step adds the change in node value to the
    split feature's column (summed over trees, not yet averaged).
    """
    feature, threshold = trees["feature"], trees["threshold"]
    left, right, value = trees["left"], trees["right"], trees["value"]
    node = np.broadcast_to(trees["roots"], (len(features), len(trees["roots"]))).copy()
    row, col = np.nonzero(left[node] >= 0)
    n_features = features.shape[1]
    while row.size:
        current = node[row, col]
        split = feature[current]
        step = np.where(features[row, split] <= threshold[current], left[current], right[current])
        if contributions is not None:
            contributions += np.bincount(row * n_features + split,
                                         weights=value[step] - value[current],
                                         minlength=contributions.size
                                         ).reshape(contributions.shape)
        node[row, col] = step
        inner = left[step] >= 0
        row, col = row[inner], col[inner]
    return node
