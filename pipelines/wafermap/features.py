"""Hand-made features of a wafer map: where its fail dies lie, and the shape of their largest
cluster. One vector of ``len(FEATURE_NAMES)`` numbers per map, computed on the model grid
(``transform.resize_map``), numpy and scipy only (no torch), for many maps at once.

What they are for: the active-learning simulation's model (``python -m
pipelines.active_learning simulate``, gradient-boosted trees on these features, retrained every
round) and the diversity step of the review queue (maps whose features are close are
near-copies of each other). They are made to read the same whichever way a map is turned:
radii are measured from the wafer's centre, sectors are sorted by their fail share.

- ``density``: fail dies / on-wafer dies;
- ``ring_1..8``: the fail share in 8 rings of equal width from the centre (radius
  normalised by the wafer's largest);
- ``inner_sector_1..8``, ``outer_sector_1..8``: the fail share in 8 angular sectors inside and
  outside 0.6 of the radius, sorted from the most failing sector down;
- ``components``: log(1 + the number of fail clusters), 8-connected;
- ``largest_share``, ``second_share``: the two largest clusters' dies / on-wafer dies;
  ``largest_of_fails``: the largest cluster's share of all fail dies;
- ``largest_radius``: how far the largest cluster's centre lies from the wafer's centre;
  ``largest_elongation``: the ratio of its two principal spreads (a scratch is long);
  ``largest_length``: its longer spread over the wafer's radius; ``largest_radial_spread``,
  ``largest_radial_mean``: the spread and mean of its dies' radii (a ring is thin and far).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pipelines.wafermap.transform import FAIL, MODEL_SIZE, resize_map

RINGS = 8
SECTORS = 8
INNER = 0.6  # inner sectors: normalised radius below this
FEATURE_NAMES: tuple[str, ...] = (
    "density", *(f"ring_{k + 1}" for k in range(RINGS)),
    *(f"inner_sector_{k + 1}" for k in range(SECTORS)),
    *(f"outer_sector_{k + 1}" for k in range(SECTORS)),
    "components", "largest_share", "second_share", "largest_of_fails", "largest_radius",
    "largest_elongation", "largest_length", "largest_radial_spread", "largest_radial_mean")
CHUNK = 64  # maps handled at once: each holds ~15 float64 arrays of CHUNK x 64 x 64 (about
# 30 MB at 64), one chunk per thread; as fast as 256 and a quarter of the memory


def _grid(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.broadcast_to(rows, (n, size, size)), np.broadcast_to(cols, (n, size, size))


def _shares(which: np.ndarray, fail: np.ndarray, on: np.ndarray, bins: int) -> np.ndarray:
    """(maps, bins): the fail share of each bin (0 where a bin holds no on-wafer die). Dies
    are counted, not summed as weights: the same numbers, a fraction of the work."""
    n = which.shape[0]
    index = np.arange(n)[:, None, None] * bins + which
    fails = np.bincount(index[fail], minlength=n * bins)
    dies = np.bincount(index[on], minlength=n * bins)
    return (fails / np.maximum(dies, 1)).reshape(n, bins)


def _largest_clusters(fail: np.ndarray, radius: np.ndarray, rows: np.ndarray,
                      cols: np.ndarray, on_count: np.ndarray, fail_count: np.ndarray,
                      rmax: np.ndarray, centre: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(maps, 9): the cluster features (see the module doc)."""
    from scipy import ndimage

    n = fail.shape[0]
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within a map, never across maps
    labels, count = ndimage.label(fail, structure=structure)
    out = np.zeros((n, 9))
    if count == 0:
        return out
    flat = labels.ravel()
    hit = flat > 0
    lab = flat[hit]
    area = np.bincount(lab, minlength=count + 1).astype(float)
    owner = np.zeros(count + 1, dtype=np.int64)
    owner[lab] = np.repeat(np.arange(n), fail[0].size)[hit]
    ids = np.arange(1, count + 1)
    per_map = np.bincount(owner[ids], minlength=n)
    # the two largest clusters of each map: sort by (map, -area)
    order = ids[np.lexsort((-area[ids], owner[ids]))]
    first = np.zeros(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(per_map)[:-1]])
    has = per_map > 0
    first[has] = order[starts[has]]
    second_area = np.zeros(n)
    two = per_map > 1
    second_area[two] = area[order[starts[two] + 1]]
    r_sum = np.bincount(lab, weights=radius.ravel()[hit], minlength=count + 1)
    r_sq = np.bincount(lab, weights=radius.ravel()[hit] ** 2, minlength=count + 1)
    y = rows.ravel()[hit]
    x = cols.ravel()[hit]
    sy = np.bincount(lab, weights=y, minlength=count + 1)
    sx = np.bincount(lab, weights=x, minlength=count + 1)
    syy = np.bincount(lab, weights=y * y, minlength=count + 1)
    sxx = np.bincount(lab, weights=x * x, minlength=count + 1)
    sxy = np.bincount(lab, weights=x * y, minlength=count + 1)
    a = area[first[has]]
    big = first[has]
    my, mx = sy[big] / a, sx[big] / a
    vyy = syy[big] / a - my ** 2
    vxx = sxx[big] / a - mx ** 2
    vxy = sxy[big] / a - mx * my
    half = np.sqrt(np.maximum(((vxx - vyy) / 2) ** 2 + vxy ** 2, 0))
    lam_big = np.maximum((vxx + vyy) / 2 + half, 0)
    lam_small = np.maximum((vxx + vyy) / 2 - half, 0)
    r_mean = r_sum[big] / a
    out[has, 0] = np.log1p(per_map[has])
    out[has, 1] = a / on_count[has]
    out[has, 2] = second_area[has] / on_count[has]
    out[has, 3] = a / np.maximum(fail_count[has], 1)
    out[has, 4] = np.hypot(my - centre[0][has], mx - centre[1][has]) / rmax[has]
    out[has, 5] = (lam_big + 1e-6) / (lam_small + 1e-3)
    out[has, 6] = np.sqrt(lam_big) / rmax[has]
    out[has, 7] = np.sqrt(np.maximum(r_sq[big] / a - r_mean ** 2, 0))
    out[has, 8] = r_mean
    return out


def grid_features(grids: np.ndarray, threads: int = 1) -> np.ndarray:
    """(maps, len(FEATURE_NAMES)) float32 features of maps already on one square grid
    (uint8 die codes, (maps, size, size)); a map with no on-wafer die gets zeros. With
    ``threads`` > 1, chunks of :data:`CHUNK` maps are worked on that many threads at once
    (numpy releases the GIL for most of the work: nearly twice as fast on 2 cores); the
    features are the same either way."""
    grids = np.asarray(grids)
    parts = [grids[start:start + CHUNK] for start in range(0, len(grids), CHUNK)]
    if threads > 1 and len(parts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(parts))) as pool:
            out = list(pool.map(_features, parts))
    else:
        out = [_features(part) for part in parts]
    return np.concatenate(out) if out else np.zeros((0, len(FEATURE_NAMES)), np.float32)


def _features(grids: np.ndarray) -> np.ndarray:
    n, size = grids.shape[0], grids.shape[1]
    on = grids > 0
    fail = grids == FAIL
    rows, cols = _grid(n, size)
    on_count = on.sum(axis=(1, 2)).astype(float)
    safe = np.maximum(on_count, 1)
    cy = (rows * on).sum(axis=(1, 2)) / safe
    cx = (cols * on).sum(axis=(1, 2)) / safe
    dy, dx = rows - cy[:, None, None], cols - cx[:, None, None]
    radius = np.hypot(dy, dx)
    rmax = np.where(on, radius, 0).max(axis=(1, 2)) + 1e-9
    radius = radius / rmax[:, None, None]
    fail_count = fail.sum(axis=(1, 2)).astype(float)
    ring = np.clip((radius * RINGS).astype(np.int64), 0, RINGS - 1)
    sector = (((np.arctan2(dy, dx) + np.pi) / (2 * np.pi)) * SECTORS).astype(np.int64) % SECTORS
    zoned = sector + SECTORS * (radius >= INNER)  # inner sectors first, then outer ones
    shares = _shares(zoned, fail, on, 2 * SECTORS)
    sectors = [-np.sort(-shares[:, :SECTORS], axis=1), -np.sort(-shares[:, SECTORS:], axis=1)]
    clusters = _largest_clusters(fail, radius, rows, cols, safe, fail_count, rmax, (cy, cx))
    features = np.column_stack([fail_count / safe, _shares(ring, fail, on, RINGS), *sectors,
                                clusters])
    features[on_count == 0] = 0
    return features.astype(np.float32)


def map_features(maps: Sequence[np.ndarray], size: int = MODEL_SIZE) -> np.ndarray:
    """Features of maps of any sizes, each resized to the model grid first (as it is served)."""
    out = np.empty((len(maps), len(FEATURE_NAMES)), np.float32)
    for start in range(0, len(maps), CHUNK):
        part = maps[start:start + CHUNK]
        out[start:start + len(part)] = grid_features(
            np.stack([resize_map(np.asarray(g), size) for g in part]))
    return out
