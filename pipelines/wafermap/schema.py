"""The wafer-map layout every reader maps to: a 2-D grid of die codes, one of nine classes."""
from __future__ import annotations

from pipelines.wafermap.transform import FAIL, MODEL_SIZE, OFF, PASS

# WM-811K's failure types, in the order of the model's outputs (the npz files' ``classes``)
CLASSES: tuple[str, ...] = ("Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full",
                            "Random", "Scratch", "none")
NO_PATTERN = "none"  # the class of a map without a defect pattern
DIE_CODES = {OFF: "off-wafer", PASS: "pass", FAIL: "fail"}
# Limits checked before any large array is built: a side longer than this is refused.
MAX_SIDE = 512

__all__ = ["CLASSES", "NO_PATTERN", "DIE_CODES", "MAX_SIDE", "MODEL_SIZE", "OFF", "PASS", "FAIL"]
