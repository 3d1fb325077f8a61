"""Request bodies and options every predict endpoint reads, checked the same way.

JSON bodies are parsed here (invalid JSON, ``NaN``/``Infinity`` literals and nesting too deep
for the parser are a 400) and their envelope validated with pydantic; form and query options
(``model``, ``threshold``, the page's edit counts) are strings checked by the parsers below.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

import numpy as np
from flask import Request, current_app
from werkzeug.routing import IntegerConverter
from pydantic import BaseModel, ValidationError

from webapp.errors import InputError

Envelope = TypeVar("Envelope", bound=BaseModel)
MAX_COUNT = 10**9
MAX_ID = 2**63 - 1  # the largest id a database row can have (a signed 64-bit integer)


class IdConverter(IntegerConverter):
    """``<id:run_id>``: a database id in a URL, 1 .. ``MAX_ID``. A larger number names no row,
    so it is a 404 from routing, before any query the database could not even compare."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ID)

MAX_DEPTH = 32  # nesting levels a JSON body may have (a row of numbers needs 3)
MAX_DIGITS = 308  # longer integer literals are beyond a float (1.8e308): no model takes them


class NotANumber:
    """A JSON literal that looks numeric but is no finite number (``NaN``, ``Infinity``,
    a 5,000-digit integer): kept as a value so validation can say where it is."""

    def __init__(self, text: str):
        self.text = text if len(text) <= 24 else text[:12] + "..." + f"({len(text)} digits)"

    def __repr__(self) -> str:
        return self.text


def _parse_int(text: str) -> int | NotANumber:
    return int(text) if len(text) <= MAX_DIGITS else NotANumber(text)


_KEY = re.compile(rb'"([^"\\]{1,60})"\s*:')


def _quotes(data: np.ndarray) -> np.ndarray:
    """Where the string quotes of JSON text are: a ``"`` preceded by an even number of
    backslashes (``"\\\\"`` ends its string; ``"\\""`` does not)."""
    quote = data == ord('"')
    backslash = data == ord("\\")
    if not backslash.any():
        return quote
    positions = np.arange(len(data))
    last_other = np.maximum.accumulate(np.where(backslash, -1, positions))
    run = np.zeros(len(data), dtype=np.int64)  # backslashes right before each byte
    run[1:] = positions[:-1] - last_other[:-1]
    return quote & (run % 2 == 0)


def _too_deep(raw: bytes) -> str | None:
    """Where a body nests deeper than ``MAX_DEPTH`` (vectorised scan, strings skipped), or None."""
    data = np.frombuffer(raw, dtype=np.uint8)
    in_string = (np.cumsum(_quotes(data)) % 2).astype(bool)
    step = np.zeros(len(data), dtype=np.int32)
    step[(data == ord("[")) | (data == ord("{"))] = 1
    step[(data == ord("]")) | (data == ord("}"))] = -1
    step[in_string] = 0
    depth = np.cumsum(step)
    if not len(depth) or depth.max() <= MAX_DEPTH:
        return None
    at = int(np.argmax(depth > MAX_DEPTH))
    keys = [m for m in _KEY.finditer(raw, 0, at) if depth[m.start()] == 1]
    inside = f" inside '{keys[-1].group(1).decode(errors='replace')}'" if keys else ""
    return f"the JSON body nests more than {MAX_DEPTH} levels deep{inside} (at byte {at})"


def json_depth_problem(raw: bytes) -> str | None:
    """Where JSON text nests deeper than ``MAX_DEPTH`` levels (for JSON files too), or None."""
    return _too_deep(raw)


def body_bytes(request: Request, limit: int, what: str = "the request body") -> bytes:
    """The raw body, at most ``limit`` bytes: a declared length over it is refused before
    anything is read, and a body sent without one (chunked) is read in pieces and refused as
    soon as it passes the limit, so it is never cut short and misread (413, naming the
    limit)."""
    def too_large(size: str) -> InputError:
        return InputError(f"{what} is {size}, more than the {limit / 2**20:g} MB a JSON body "
                          f"may hold; send a file upload or split it", code=413)

    length = request.content_length
    if length is not None:
        if length > limit:
            raise too_large(f"{length / 2**20:.1f} MB")
        return request.get_data(cache=True)
    parts, size = [], 0
    while True:
        part = request.stream.read(min(1024 * 1024, limit + 1 - size))
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
        if size > limit:
            raise too_large(f"over {limit / 2**20:g} MB")


def read_json(request: Request) -> Any:
    """The request body parsed as JSON, or a 400 saying what is wrong with it.

    Bounded before Python objects are built: at most ``MAX_JSON_BYTES`` bytes
    (:func:`body_bytes`) and ``MAX_JSON_ITEMS`` values (counted by their separators, a cheap
    upper bound), so a body cannot cost the server more than a few times its size."""
    raw = body_bytes(request, int(current_app.config["MAX_JSON_BYTES"]))
    items = raw.count(b",") + 1
    limit = int(current_app.config["MAX_JSON_ITEMS"])
    if items > limit:
        raise InputError(f"the JSON body holds about {items:,} values, more than the "
                         f"{limit:,} one request may hold; split it or send a file", code=413)
    if not raw.strip():
        raise InputError("the request body is empty: send JSON, or a file in the form field "
                         "'file'")
    deep = _too_deep(raw)
    if deep:
        raise InputError(f"{deep}; rows are flat lists of numbers")
    try:
        return json.loads(raw, parse_constant=NotANumber, parse_int=_parse_int)
    except RecursionError:
        raise InputError("the JSON body is nested too deeply to read; send a flat object") from None
    except UnicodeDecodeError:
        raise InputError("the JSON body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the body is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                         f"{exc.colno})") from None


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


def parse_threshold(value, name: str = "threshold") -> float | None:
    """A threshold (or another level called ``name``) from a request: a number or numeric
    string, or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {str(value).lower()}")
    if not isinstance(value, (int, float, str)):
        raise InputError(f"{name} must be a number, got {type(value).__name__}")
    try:
        threshold = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a number, got '{str(value)[:40]}'") from None
    if not math.isfinite(threshold):
        raise InputError(f"{name} must be a finite number, got '{str(value)[:40]}'")
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


FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True,
              "0": False, "false": False, "no": False, "off": False}


def parse_flag(value, name: str) -> bool | None:
    """A yes/no option from a form or query string (``1``/``0``, ``true``/``false``, ...)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in FLAG_WORDS:
        raise InputError(f"{name} must be true or false (or 1 or 0), got '{str(value)[:40]}'")
    return FLAG_WORDS[text]
