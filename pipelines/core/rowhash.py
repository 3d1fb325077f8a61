"""Canonical row hashes: which rows of a batch are rows a model was trained on.

:func:`row_hashes` is the one canonical row hash: a value is reduced to 6 significant digits
as an integer mantissa and a decimal exponent (so ``0.1``, ``1e-1`` and ``0.1000001`` hash
alike), every NaN is the same, ``-0.0`` is ``0``; the row's codes are hashed to 8 bytes.
:func:`row_keys` hashes a few columns the same way: a row can only be a training row when its
key is a training row's key, so :func:`in_sample` hashes whole only the rows whose key matches.
Every module that warns about in-sample rows (sensor wafers, time-series engines) uses these.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SIGNIFICANT_DIGITS = 6
HASH_CHUNK_ROWS = 256  # rows per pass of row_hashes(): small enough to stay in cache
KEY_COLUMNS = 8  # sensors in a row's key (see row_keys)
NAN_EXPONENT = np.int64(1 << 20)  # outside any float's decimal exponent range
_POWERS_FROM = -323  # 10.0 ** -323 is the smallest power of ten above 0 in float64
_POWERS = 10.0 ** np.arange(_POWERS_FROM, 309, dtype=np.float64)  # a table: np.power is slow


def canonical_codes(X: np.ndarray) -> np.ndarray:
    """(rows, 2 * columns) int64: each value's 6-significant-digit mantissa and exponent."""
    X = np.asarray(X, dtype=np.float64)
    missing = ~np.isfinite(X)
    values = np.where(missing, 0.0, X)
    magnitude = np.abs(values)
    exponent = np.floor(np.log10(np.where(magnitude > 0, magnitude, 1.0))).astype(np.int64)
    exponent = np.maximum(exponent - (SIGNIFICANT_DIGITS - 1), _POWERS_FROM)
    mantissa = np.rint(values / _POWERS[exponent - _POWERS_FROM]).astype(np.int64)
    carry = np.abs(mantissa) >= 10 ** SIGNIFICANT_DIGITS  # 9.999996 -> 10.0000: renormalise
    mantissa = np.where(carry, np.rint(mantissa / 10.0).astype(np.int64), mantissa)
    exponent = exponent + carry
    exponent = np.where(mantissa == 0, 0, exponent)  # 0 and -0 alike
    exponent = np.where(missing, NAN_EXPONENT, exponent)
    return np.concatenate([mantissa, exponent], axis=1)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection on uint64 that spreads every input bit (wraps mod 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_hashes(X: np.ndarray) -> np.ndarray:
    """One unsigned 64-bit hash per row of sensor values (see the module docstring).

    Each code is salted by its position and mixed, the row's mixed codes are summed (mod
    2**64) and mixed once more; vectorised, so 10,000 x 590 takes well under a second.
    """
    X = np.asarray(X, dtype=np.float64)
    salt = _mix(np.arange(1, 2 * X.shape[1] + 1, dtype=np.uint64))
    out = np.empty(len(X), dtype=np.uint64)
    for start in range(0, len(X), HASH_CHUNK_ROWS):
        codes = canonical_codes(X[start:start + HASH_CHUNK_ROWS]).view(np.uint64)
        out[start:start + len(codes)] = _mix(_mix(codes + salt).sum(axis=1, dtype=np.uint64))
    return out


def key_columns(X: np.ndarray, n: int = KEY_COLUMNS) -> np.ndarray:
    """The ``n`` columns whose canonical values tell the rows of ``X`` apart best (the most
    distinct values; ties: the first), in column order."""
    X = np.asarray(X, dtype=np.float64)
    distinct = [np.unique(row_hashes(X[:, [j]])).size for j in range(X.shape[1])]
    return np.sort(np.argsort(-np.asarray(distinct), kind="stable")[:n])


def row_keys(X: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Each row's key: the canonical hash of its values in ``columns`` (see :func:`row_hashes`).

    Rows with equal canonical values have equal keys, so a row whose key is no training
    row's key is no training row.
    """
    return row_hashes(np.asarray(X, dtype=np.float64)[:, columns])


def in_sample(X: np.ndarray, training_hashes: np.ndarray,
              training_keys: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Boolean per row: its canonical hash is one of the training rows' hashes.

    With ``training_keys`` (key columns, the training rows' :func:`row_keys`), only rows
    whose key is a training key are hashed whole: the same answer for a fraction of the work.
    """
    if training_keys is None:
        return np.isin(row_hashes(X), training_hashes)
    columns, keys = training_keys
    found = np.zeros(len(X), dtype=bool)
    candidates = np.flatnonzero(np.isin(row_keys(X, columns), keys))
    if candidates.size:
        found[candidates] = np.isin(row_hashes(np.asarray(X)[candidates]), training_hashes)
    return found


def write_row_hashes(path: Path, hashes: np.ndarray) -> None:
    """Store row hashes as a sorted uint64 .npy (8 bytes a row, no pickle)."""
    with open(path, "wb") as handle:
        np.save(handle, np.unique(np.asarray(hashes, dtype=np.uint64)), allow_pickle=False)


def read_row_hashes(path: Path) -> np.ndarray:
    """The stored row hashes (a sorted uint64 array)."""
    return np.load(path, allow_pickle=False)


def write_row_keys(path: Path, columns: np.ndarray, keys: np.ndarray) -> None:
    """Store the key columns and the training rows' keys (sorted, unique) in one .npz."""
    with open(path, "wb") as handle:
        np.savez(handle, columns=np.asarray(columns, dtype=np.int64),
                 keys=np.unique(np.asarray(keys, dtype=np.uint64)))


def read_row_keys(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The stored ``(columns, keys)`` (see :func:`row_keys`)."""
    with np.load(path, allow_pickle=False) as stored:
        return stored["columns"], stored["keys"]
