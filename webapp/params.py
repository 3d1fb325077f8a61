"""Options every predict endpoint accepts (``model``, ``threshold``), checked the same way."""
from __future__ import annotations

import math

from webapp.errors import InputError


def parse_threshold(value) -> float | None:
    """A threshold from a request (number or numeric string), or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"threshold must be a number, got {str(value).lower()}")
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number, got '{value}'") from None
    if not math.isfinite(threshold):
        raise InputError(f"threshold must be a finite number, got '{value}'")
    return threshold


def parse_model(value) -> str | None:
    """A model name from a request, or None for the module's default."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"model must be a model name (a string), got {type(value).__name__}")
    return value
