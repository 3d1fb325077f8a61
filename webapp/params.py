"""Request bodies and options every predict endpoint reads, checked the same way.

JSON bodies are parsed here (invalid JSON, ``NaN``/``Infinity`` literals and nesting too deep
for the parser are a 400) and their envelope validated with pydantic; form and query options
(``model``, ``threshold``, the page's edit counts) are strings checked by the parsers below.
"""
from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from flask import Request
from pydantic import BaseModel, ValidationError

from webapp.errors import InputError

Envelope = TypeVar("Envelope", bound=BaseModel)
MAX_COUNT = 10**9


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number; send null for a missing value")


def read_json(request: Request) -> Any:
    """The request body parsed as JSON, or a 400 saying what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InputError("the request body is empty: send JSON, or a file in the form field "
                         "'file'")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise InputError("the JSON body is nested too deeply to read; send a flat object") from None
    except UnicodeDecodeError:
        raise InputError("the JSON body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the body is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                         f"{exc.colno})") from None
    except ValueError as exc:  # a NaN or Infinity literal
        raise InputError(f"the body is not valid JSON: {exc}") from None


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validate_envelope(model: type[Envelope], body: Any) -> Envelope:
    """``body`` checked against a pydantic model; a 400 naming each bad field's JSON path."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems, seen = [], set()
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(
                ("function-", "list[", "str", "int", "float", "bool", "constrained"))))
            path = _path(loc)
            if path not in seen and len(problems) < 20:
                seen.add(path)
                problems.append({"path": path, "message": error["msg"]})
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{first['path']}: {first['message']}{more}"[:280], problems) from None


def parse_threshold(value) -> float | None:
    """A threshold from a request (number or numeric string), or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"threshold must be a number, got {str(value).lower()}")
    if not isinstance(value, (int, float, str)):
        raise InputError(f"threshold must be a number, got {type(value).__name__}")
    try:
        threshold = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"threshold must be a number, got '{str(value)[:40]}'") from None
    if not math.isfinite(threshold):
        raise InputError(f"threshold must be a finite number, got '{str(value)[:40]}'")
    return threshold


def check_threshold_range(threshold: float | None, score_range: tuple[float, float],
                          model: str) -> None:
    """A 400 when ``threshold`` lies outside the scores the model can give."""
    low, high = score_range
    if threshold is not None and not low <= threshold <= high:
        span = f"{low:g} to {high:g}" if math.isfinite(high) else f"at least {low:g}"
        raise InputError(f"threshold {threshold:g} is outside the scores model '{model}' gives "
                         f"({span}); choose a threshold in that range")


def parse_model(value) -> str | None:
    """A model name from a request, or None for the module's default."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"model must be a model name (a string), got {type(value).__name__}")
    return value[:100]


def parse_count(value, name: str) -> int | None:
    """A non-negative whole number from a form field (the page's edit counts), or None."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) > MAX_COUNT:
        raise InputError(f"{name} must be a whole number from 0 to {MAX_COUNT}, got "
                         f"'{text[:40]}'")
    return int(text)
