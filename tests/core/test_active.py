"""Active learning's core (pipelines/core/active.py) and the COCO layout (pipelines/core/coco.py)."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.active import (diverse_order, entropy_uncertainty, kmeans,
                                   margin_uncertainty, spread_of, stratified_sample,
                                   threshold_distance, threshold_uncertainty)
from pipelines.core.coco import (box_polygon, check_document, mask_bbox, rle_decode,
                                 rle_encode)
from pipelines.core.problems import SchemaError


def test_uncertainty_of_class_probabilities():
    p = np.array([[0.5, 0.5, 0.0], [0.9, 0.05, 0.05], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    assert margin_uncertainty(p) == pytest.approx([1.0, 0.15, 0.0, 0.8])
    entropy = entropy_uncertainty(p)
    assert entropy[2] == pytest.approx(0.0, abs=1e-9)
    assert entropy[0] == pytest.approx(np.log(2) / np.log(3))
    assert entropy[3] > entropy[1] > entropy[2]
    with pytest.raises(ValueError):
        margin_uncertainty(np.array([0.5, 0.5]))


def test_uncertainty_of_a_score_against_its_threshold():
    assert threshold_distance([3.0, 5.0, 1.0], 3.0, 2.0) == pytest.approx([0.0, 1.0, 1.0])
    assert threshold_uncertainty([3.0, 5.0, 9.0], 3.0, 2.0) == pytest.approx([1.0, 0.5, 0.25])
    assert spread_of([1.0, 2.0, 3.0]) == pytest.approx(np.std([1.0, 2.0, 3.0]))
    assert spread_of([2.0, 2.0]) == 1.0 and spread_of([]) == 1.0  # never a zero division
    with pytest.raises(ValueError, match="spread"):
        threshold_distance([1.0], 0.0, 0.0)


def test_kmeans_finds_separate_groups():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.1, (20, 2)) for c in (0, 5, 10)])
    groups = kmeans(X, 3, seed=1)
    assert len(set(groups)) == 3
    for start in (0, 20, 40):
        assert len(set(groups[start:start + 20])) == 1


def near_copies_and_others():
    """Six near-copies of one item, the most uncertain of all, and six distinct items a little
    less uncertain: a plain uncertainty order starts with the six copies."""
    rng = np.random.default_rng(0)
    copies = np.ones((6, 4)) * 10 + rng.normal(0, 0.01, (6, 4))
    others = np.eye(6, 4) * 10 - 5 + rng.normal(0, 0.01, (6, 4))
    others[4:] = [[-10, 0, 5, 0], [0, -10, 0, 5]]
    features = np.concatenate([copies, others])
    uncertainty = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.9, 0.89, 0.88, 0.87, 0.86,
                            0.85])
    return uncertainty, features


def test_diverse_order_spreads_near_copies_apart():
    uncertainty, features = near_copies_and_others()
    plain = np.argsort(-uncertainty)
    assert set(plain[:4]) <= set(range(6))  # uncertainty alone: the head is all copies
    order = diverse_order(uncertainty, features, per_round=4, candidates=3)
    assert sorted(order.tolist()) == list(range(12))  # every item, once
    head = order[:4]
    assert sum(i < 6 for i in head) == 1  # one copy in the first round, not four
    assert head[0] == 0  # the most uncertain item still comes first
    assert list(uncertainty[head]) == sorted(uncertainty[head], reverse=True)  # by uncertainty
    # one copy per round: every distinct item comes before the fourth copy
    fourth_copy = [k for k, i in enumerate(order) if i < 6][3]
    assert all(i < 6 for i in order[fourth_copy:])


def test_diverse_order_is_the_uncertainty_order_beyond_the_clustered_pool():
    uncertainty, features = near_copies_and_others()
    order = diverse_order(uncertainty, features, per_round=2, candidates=2)
    pooled = set(np.argsort(-uncertainty)[:4])
    assert set(order[:4]) == pooled
    assert list(order[4:]) == list(np.argsort(-uncertainty, kind="stable")[4:])
    assert list(diverse_order(uncertainty, features, per_round=1)) == \
        list(np.argsort(-uncertainty, kind="stable"))
    assert len(diverse_order(np.array([]), np.zeros((0, 4)), per_round=5)) == 0


def test_stratified_sample_keeps_every_class():
    labels = np.array(["a"] * 900 + ["b"] * 95 + ["c"] * 5)
    chosen = stratified_sample(labels, 100, minimum=2, seed=0)
    counts = {c: int(np.sum(labels[chosen] == c)) for c in "abc"}
    assert counts == {"a": 90, "b": 10, "c": 2}
    assert len(set(chosen)) == len(chosen)
    assert list(chosen) == list(stratified_sample(labels, 100, minimum=2, seed=0))


def test_rle_round_trip_and_bbox():
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    mask[4, 0] = True
    rle = rle_encode(mask)
    assert rle["size"] == [5, 7] and sum(rle["counts"]) == 35
    assert rle["counts"][0] == 4  # column-major: the first column's four zeros, then its one
    assert np.array_equal(rle_decode(rle), mask)
    starts_on = np.ones((2, 2), dtype=bool)
    assert rle_encode(starts_on)["counts"] == [0, 4]
    assert np.array_equal(rle_decode(rle_encode(starts_on)), starts_on)
    assert mask_bbox(mask) == [0, 1, 6, 4]
    assert mask_bbox(np.zeros((3, 3), bool)) is None
    assert box_polygon([1, 2, 3, 4]) == [[1.0, 2.0, 4.0, 2.0, 4.0, 6.0, 1.0, 6.0]]
    for bad in ({"counts": [1, 2], "size": [2, 2]}, {"counts": "abc", "size": [2, 2]},
                {"counts": [4], "size": [2]}):
        with pytest.raises(ValueError):
            rle_decode(bad)


def good_document() -> dict:
    return {"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 3}],
            "categories": [{"id": 1, "name": "defective"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2],
                             "segmentation": [[0, 0, 2, 0, 2, 2]], "iscrowd": 0,
                             "attributes": {"scope": "region"}}]}


def test_coco_check_names_each_problem_by_its_path():
    assert check_document(good_document())
    doc = good_document()
    doc["annotations"].append({"id": 2, "image_id": 9, "category_id": 1, "bbox": [0, 0, -1, 1],
                               "segmentation": "x", "attributes": {"scope": "pixel"}})
    doc["images"].append({"id": 1, "file_name": 3, "width": 0, "height": 2})
    with pytest.raises(SchemaError) as caught:
        check_document(doc, "labels.json")
    paths = {p.path for p in caught.value.problems}
    assert {"images[1].id", "images[1].width", "images[1].file_name", "annotations[1].image_id",
            "annotations[1].bbox", "annotations[1].segmentation",
            "annotations[1].attributes"} <= paths
    assert all(p.file == "labels.json" for p in caught.value.problems)
    with pytest.raises(SchemaError, match="'images' must be a list"):
        check_document({"images": {}, "categories": [], "annotations": []})
    with pytest.raises(SchemaError):
        check_document([1, 2])
