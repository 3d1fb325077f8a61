"""The resize keeps every fail die, and matches PIL's nearest neighbour when growing."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.wafermap.examples import wafer_disc
from pipelines.wafermap.transform import (FAIL, MODEL_SIZE, PASS, group_starts, resize_map,
                                          to_source_grid)


@pytest.mark.parametrize("shape", [(212, 84), (84, 212), (65, 65), (512, 3), (20, 20), (64, 64)])
def test_every_single_fail_die_survives(shape):
    rng = np.random.default_rng(0)
    for _ in range(20):
        grid = np.ones(shape, np.uint8)
        r, c = rng.integers(shape[0]), rng.integers(shape[1])
        grid[r, c] = FAIL
        out = resize_map(grid)
        assert out.shape == (MODEL_SIZE, MODEL_SIZE) and out.dtype == np.uint8
        assert (out == FAIL).any(), (shape, r, c)


def test_every_source_row_lands_in_an_output_cell():
    for n in (5, 27, 63, 64, 65, 100, 212, 512):
        starts = group_starts(n, MODEL_SIZE)
        assert starts[0] == 0 and np.all(np.diff(starts) >= 0)
        ends = np.maximum(np.append(starts[1:], n), starts + 1)
        covered = np.zeros(n, bool)
        for s, e in zip(starts, ends):
            covered[s:e] = True
        assert covered.all()


def test_growing_is_plain_nearest_neighbour_and_same_size_is_identity():
    grid = wafer_disc(26)
    grid[10, 10] = FAIL
    out = resize_map(grid)
    centres = ((np.arange(MODEL_SIZE) + 0.5) * 26 / MODEL_SIZE).astype(int)
    np.testing.assert_array_equal(out, grid[np.ix_(centres, centres)])
    square = wafer_disc(MODEL_SIZE)
    np.testing.assert_array_equal(resize_map(square), square)


def test_matches_pil_nearest_on_small_maps():
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    for shape in [(26, 26), (45, 48), (33, 17)]:
        grid = rng.integers(0, 3, shape).astype(np.uint8)
        ref = np.asarray(pil.fromarray(grid).resize((MODEL_SIZE, MODEL_SIZE), pil.NEAREST))
        np.testing.assert_array_equal(resize_map(grid), ref)


def test_shrinking_keeps_what_pil_samples_plus_the_fail_dies():
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(2)
    grid = np.where(rng.random((212, 84)) < 0.02, FAIL, PASS).astype(np.uint8)
    ref = np.asarray(pil.fromarray(grid).resize((MODEL_SIZE, MODEL_SIZE), pil.NEAREST))
    ours = resize_map(grid)
    assert (ours >= ref).all() and (ours == FAIL).sum() > (ref == FAIL).sum()


def test_refuses_non_grids():
    with pytest.raises(ValueError, match="non-empty 2-D"):
        resize_map(np.ones((0, 5)))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        resize_map(np.ones(5))


def test_values_go_back_to_the_source_grid():
    values = np.zeros((MODEL_SIZE, MODEL_SIZE))
    values[:, :32] = 1.0
    back = to_source_grid(values, (212, 84))
    assert back.shape == (212, 84)
    assert back[:, :40].min() == 1.0 and back[:, 44:].max() == 0.0
    small = to_source_grid(values, (26, 26))
    assert small.shape == (26, 26) and small[:, :13].min() == 1.0 and small[:, 13:].max() == 0.0
