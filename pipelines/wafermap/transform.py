"""Resize wafer maps to the model's grid without losing a fail die: the same code trains and serves.

Maps come in any size (a few hundred dies up to 212 x 84 in WM-811K). Each axis is resized on
its own with a max over the source cells that fall into each output cell. Because the die
codes are ordered (0 off-wafer < 1 pass < 2 fail), the max keeps a fail die wherever one
lands:

- shrinking (source longer than the grid): the source rows are cut into contiguous groups,
  one per output row, covering every source row exactly once, so every fail die is in some
  output cell, and that cell is a fail; each group starts at the row nearest-neighbour
  sampling would pick;
- growing (source shorter): each output row copies the source row under its centre (nearest
  neighbour, sampled as PIL's ``Image.NEAREST`` does), and every source row is copied at
  least once.

Both cases are one ``np.maximum.reduceat`` per axis. Maps up to 64 dies on a side come out
exactly as PIL's nearest-neighbour resize made the ``X`` array of ``wafer_maps_64.npz``; a
larger map gets every die PIL sampled plus any fail die PIL skipped.
"""
from __future__ import annotations

import numpy as np

MODEL_SIZE = 64  # the model's input grid (size x size)
OFF, PASS, FAIL = 0, 1, 2  # die codes


def group_starts(n: int, size: int) -> np.ndarray:
    """First source index of each of ``size`` output cells along an axis of length ``n``.

    Start ``i`` is the index under output cell ``i``'s centre, ``floor((i + 1/2) * n / size)``
    (the die PIL's nearest-neighbour resize samples), except that the first start is 0.
    Shrinking, the groups ``[start_i, start_i+1)`` are contiguous and cover every index;
    growing, consecutive starts differ by 0 or 1, so ``reduceat`` copies exactly one index.
    """
    starts = ((2 * np.arange(size, dtype=np.int64) + 1) * n) // (2 * size)
    starts[0] = 0
    return starts


def resize_map(grid: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """A 2-D 0/1/2 map resized to ``size`` x ``size`` (uint8), keeping every fail die visible."""
    grid = np.asarray(grid)
    if grid.ndim != 2 or grid.shape[0] == 0 or grid.shape[1] == 0:
        raise ValueError(f"a wafer map must be a non-empty 2-D grid, got shape {grid.shape}")
    h, w = grid.shape
    out = grid.astype(np.uint8, copy=False)
    if h != size:
        out = np.maximum.reduceat(out, group_starts(h, size), axis=0)
    if w != size:
        out = np.maximum.reduceat(out, group_starts(w, size), axis=1)
    return np.ascontiguousarray(out)


def resize_maps(maps, size: int = MODEL_SIZE) -> np.ndarray:
    """Many maps of any sizes -> (n, size, size) uint8."""
    out = np.empty((len(maps), size, size), dtype=np.uint8)
    for i, grid in enumerate(maps):
        out[i] = resize_map(grid, size)
    return out


def to_source_grid(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-cell values on the model's grid (size x size) carried back to a map of ``shape``.

    Each source die gets the mean of the output cells it was resized into (the inverse of
    :func:`resize_map`'s grouping), so a saliency map can be drawn over the original dies.
    """
    values = np.asarray(values, dtype=float)
    size_h, size_w = values.shape
    return _spread(shape[0], size_h) @ values @ _spread(shape[1], size_w).T


def _spread(n: int, size: int) -> np.ndarray:
    """(n, size) matrix: row r averages the output cells whose group holds source index r."""
    starts = group_starts(n, size)
    ends = np.maximum(np.append(starts[1:], n), starts + 1)
    index = np.arange(n)[:, None]
    member = (index >= starts[None, :]) & (index < ends[None, :])
    return member / member.sum(axis=1, keepdims=True)
