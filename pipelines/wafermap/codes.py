"""A wafer map packed small: its die codes at 2 bits each, four to a byte, base64.

``{"rows", "cols", "codes"}``, the first cell in the lowest bits, row by row: 0.33 bytes a die.
One packing for everything that carries a map as text: the page
(``static/js/lib/gridcanvas.js`` unpacks it), the review queue's stored maps and the COCO export
(``pipelines.wafermap.annotations``).
"""
from __future__ import annotations

import base64
import binascii

import numpy as np

from pipelines.wafermap.schema import MAX_SIDE


def pack_grid(grid: np.ndarray) -> dict:
    """``{"rows", "cols", "codes"}`` of a 2-D map of die codes 0..3."""
    grid = np.asarray(grid, dtype=np.uint8)
    flat = grid.ravel()
    padded = np.zeros(-(-flat.size // 4) * 4, dtype=np.uint8)
    padded[:flat.size] = flat
    quads = padded.reshape(-1, 4)
    packed = quads[:, 0] | quads[:, 1] << 2 | quads[:, 2] << 4 | quads[:, 3] << 6
    return {"rows": int(grid.shape[0]), "cols": int(grid.shape[1]),
            "codes": base64.b64encode(packed.astype(np.uint8).tobytes()).decode()}


def packed_bytes(grid: np.ndarray) -> bytes:
    """The packed codes as raw bytes (what the database stores), without the shape."""
    return base64.b64decode(pack_grid(grid)["codes"])


def unpack_bytes(data: bytes, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols) uint8 map from packed bytes; ValueError when they do not fit."""
    if not (0 < rows <= MAX_SIDE and 0 < cols <= MAX_SIDE):
        raise ValueError(f"a map of {rows} x {cols} dies; each side must be 1..{MAX_SIDE}")
    if len(data) != -(-rows * cols // 4):
        raise ValueError(f"{len(data)} bytes of codes for a {rows} x {cols} map "
                         f"({-(-rows * cols // 4)} expected)")
    raw = np.frombuffer(data, dtype=np.uint8)
    cells = np.stack([(raw >> shift) & 3 for shift in (0, 2, 4, 6)], axis=1).ravel()
    return cells[:rows * cols].reshape(rows, cols).astype(np.uint8)


def unpack_grid(packed: dict) -> np.ndarray:
    """The map of ``{"rows", "cols", "codes"}``; ValueError naming what is wrong."""
    if not isinstance(packed, dict) or set(packed) < {"rows", "cols", "codes"}:
        raise ValueError("a packed map is {\"rows\", \"cols\", \"codes\"}")
    rows, cols, codes = packed["rows"], packed["cols"], packed["codes"]
    if type(rows) is not int or type(cols) is not int or not isinstance(codes, str):
        raise ValueError("rows and cols must be whole numbers and codes base64 text")
    try:
        data = base64.b64decode(codes, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("codes is not base64 text") from None
    return unpack_bytes(data, rows, cols)
