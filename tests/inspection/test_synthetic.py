"""The synthetic defects that measure the inspection models: every kind, where its mask says."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.inspection.examples import synthetic_parts
from pipelines.inspection.synthetic import KINDS, make_defects

PARTS = synthetic_parts(3, 128, seed=5).astype(np.uint8)


def test_every_image_gets_every_kind_in_turn():
    defects, masks, kinds = make_defects(PARTS, seed=1, per_image=len(KINDS))
    assert kinds == list(KINDS) * len(PARTS)
    assert defects.shape == (len(PARTS) * len(KINDS), *PARTS.shape[1:])
    assert masks.shape == defects.shape[:3] and masks.dtype == bool


@pytest.mark.parametrize("k", range(len(KINDS)))
def test_each_kind_changes_the_image_mostly_inside_its_mask(k):
    defects, masks, kinds = make_defects(PARTS, seed=2, per_image=len(KINDS))
    for i in range(len(PARTS)):
        j = i * len(KINDS) + k
        change = np.abs(defects[j].astype(int) - PARTS[i]).sum(-1)
        mask = masks[j]
        assert kinds[j] == KINDS[k] and 0 < mask.sum() < mask.size / 4
        # a defect is where its mask is: the change inside the mask outweighs the change
        # outside it (soft blobs fade out a little beyond their mask)
        assert change[mask].mean() > 5 * max(change[~mask].mean(), 0.01), KINDS[k]


def test_the_same_seed_makes_the_same_defects():
    a, b = make_defects(PARTS, seed=3, per_image=2), make_defects(PARTS, seed=3, per_image=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
