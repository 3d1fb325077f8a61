"""Reading time-series requests: an uploaded history file, or JSON windows for detect.

Files (form field ``file``): the C-MAPSS text layout or a CSV with a header, plain or gzipped
(``pipelines.timeseries.ingest``). Optional form fields: ``machine_column``, ``time_column``
and ``sensors`` (comma-separated) name the CSV's columns; ``model`` and ``threshold``. The row
count is checked against ``MAX_ROWS`` before any array is built (413 beyond).

Detect JSON: ``{"machine_id", "window": [[sensor values per cycle], ...], "timestamp",
"cycles": [...] (optional), "model", "threshold"}``; batch: ``{"windows": [{...}, ...],
"model", "threshold"}``. Every value is checked (numbers only, finite, within float32;
not booleans, nulls or nested lists); problems are located by JSON path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from typing import Annotated

from flask import Request, current_app
from pydantic import BaseModel, ConfigDict, Field

from pipelines.core.problems import FLOAT32_MAX, Problem, SchemaError
from pipelines.timeseries.ingest import Series, read_series
from webapp.errors import InputError
from webapp.params import NotANumber, parse_model, parse_threshold, read_json
from webapp.uploads import read_uploads, uploaded_files

ACCEPTED = ("C-MAPSS .txt (26 columns, no header) or a CSV with a header (machine id, time "
            "or cycle, sensors), plain or .gz")
MAX_ID = 128
Number = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=MAX_ID)] | Annotated[float, Field(allow_inf_nan=False)]


class TimeseriesPredictForm(BaseModel):
    """The multipart form of ``POST /api/v1/timeseries/predict`` (read by
    :func:`file_request`)."""

    file: bytes = Field(description=f"a sensor history: {ACCEPTED}")
    machine_column: str | None = Field(None, description="the CSV's machine id column")
    time_column: str | None = Field(None, description="the CSV's time or cycle column")
    sensors: str | None = Field(None, description="the CSV's sensor columns, comma-separated")
    model: str | None = Field(None, description="a model name; the module's default if absent")
    threshold: str | None = Field(None, description="a number: flag cycles scoring at or above")
    values: str | None = Field(None, description="true: the sensor values back, for the page")


class DetectWindow(BaseModel):
    """One window to score: a machine's last cycles, each a list of sensor values.

    Its fields are the ones :func:`detect_item` accepts (``KEYS``); the values are
    checked there, each problem located by JSON path."""

    model_config = ConfigDict(extra="forbid")
    machine_id: Text = Field(description="the machine's id (text or a number)")
    window: Annotated[list[list[Number]], Field(min_length=1)] = Field(
        description="cycles, oldest first, each the sensor values in the model's order")
    timestamp: Text | None = Field(None, description="the last cycle's time, as text")
    cycles: list[Number] | None = Field(None, description="each row's cycle number, increasing")
    cycle: Number | None = Field(None, description="the last row's cycle number")


class DetectBody(DetectWindow):
    """The JSON body of ``POST /api/v1/timeseries/detect``: one window and the options."""

    model: Annotated[str, Field(max_length=100)] | None = None
    threshold: Number | None = None


class DetectBatchBody(BaseModel):
    """The JSON body of ``POST /api/v1/timeseries/detect/batch``."""

    model_config = ConfigDict(extra="forbid")
    windows: Annotated[list[DetectWindow], Field(min_length=1)]
    model: Annotated[str, Field(max_length=100)] | None = None
    threshold: Number | None = None


@dataclass
class FileRequest:
    """A parsed file request: the series and the options."""

    series: Series
    sha256: str
    model: str | None = None
    threshold: float | None = None
    values: bool = False  # the page asks for the sensor values back, to draw them


def _field(request: Request, name: str) -> str | None:
    value = request.form.get(name, request.args.get(name))
    return value.strip()[:200] if isinstance(value, str) and value.strip() else None


def file_request(request: Request) -> FileRequest:
    """The uploaded history and its options, or a 400/413 naming the problem."""
    files = uploaded_files(request, what=f"a sensor history ({ACCEPTED})")
    items, sha256 = read_uploads(files, max_files=1)
    item = items[0]
    sensors = _field(request, "sensors")
    expanded = int(current_app.config["MAX_CONTENT_LENGTH"])  # a .gz holds no more than this
    series = read_series(item.data, item.name, max_bytes=expanded,
                         machine_column=_field(request, "machine_column"),
                         time_column=_field(request, "time_column"),
                         sensors=[s.strip() for s in sensors.split(",") if s.strip()]
                         if sensors else None) \
        if any(_field(request, k) for k in ("machine_column", "time_column", "sensors")) \
        else read_series(item.data, item.name, max_bytes=expanded)
    limit = int(current_app.config["MAX_ROWS"])
    if len(series) > limit:
        raise InputError(f"{item.name}: {len(series)} rows is more than the {limit} row limit; "
                         f"split the file", code=413)
    values = _field(request, "values")
    return FileRequest(series, sha256, parse_model(_field(request, "model")),
                       parse_threshold(_field(request, "threshold")),
                       values in ("1", "true"))


# -- detect JSON ------------------------------------------------------------------------------
def _number_problem(value, path: str) -> Problem | None:
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict, str)):
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) \
            else "a list" if isinstance(value, list) else "an object" \
            if isinstance(value, dict) else f"'{value[:20]}'"
        return Problem(f"{shown} is not a number", path=path)
    if isinstance(value, NotANumber):
        return Problem(f"{value} is not a finite number (no NaN or Infinity inside a window)",
                       path=path)
    if not isinstance(value, (int, float)) or not math.isfinite(value) \
            or abs(value) > FLOAT32_MAX:
        return Problem(f"{value!r:.30} is not a finite number within ±{FLOAT32_MAX:.3g}",
                       path=path)
    return None


def window_array(item, path: str, n_sensors: int) -> np.ndarray | list[Problem]:
    """A JSON window (list of cycles, each a list of ``n_sensors`` numbers) as an array."""
    if not isinstance(item, list) or not item:
        return [Problem("a window must be a non-empty list of cycles, each a list of sensor "
                        "values", path=path)]
    problems = []
    for r, row in enumerate(item):
        if not isinstance(row, list):
            problems.append(Problem("a cycle must be a list of sensor values", path=f"{path}[{r}]"))
        elif len(row) != n_sensors:
            problems.append(Problem(f"{len(row)} sensor values; each cycle needs {n_sensors} "
                                    f"(wrong number of sensor columns)", path=f"{path}[{r}]"))
        else:
            for c, value in enumerate(row):
                problem = _number_problem(value, f"{path}[{r}][{c}]")
                if problem:
                    problems.append(problem)
                    break
        if len(problems) >= 5:
            break
    return problems or np.asarray(item, dtype=float)


def _text(value, path: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InputError(f"{path}: required (the machine's id)")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{path}: must be text or a number, got {type(value).__name__}")
    text = str(value).strip()
    if required and not text:
        raise InputError(f"{path}: must not be empty")
    if len(text) > MAX_ID:
        raise InputError(f"{path}: at most {MAX_ID} characters")
    return text


@dataclass
class DetectItem:
    """One window to score."""

    machine_id: str
    window: np.ndarray
    timestamp: str | None
    cycle: float | None
    path: str = "window"  # the window's JSON path, for problems found later
    previous_cycle: float | None = None  # the cycle before the last one, when cycles are sent


KEYS = set(DetectWindow.model_fields)  # one source with the documented schema


def detect_item(body, path: str, n_sensors: int, min_cycles: int) -> DetectItem:
    """One detect window, checked; a 400 naming the JSON path of the first problem."""
    if not isinstance(body, dict):
        raise InputError(f"{path or 'body'}: must be an object with machine_id and window")
    unknown = sorted(set(body) - (KEYS if path else set(DetectBody.model_fields)))
    if unknown:
        raise InputError(f"{path + '.' if path else ''}{unknown[0]}: unknown field; send "
                         f"machine_id, window, timestamp (optional cycles)")
    prefix = f"{path}." if path else ""
    machine = _text(body.get("machine_id"), f"{prefix}machine_id", required=True)
    timestamp = _text(body.get("timestamp"), f"{prefix}timestamp")
    if "window" not in body:
        raise InputError(f"{prefix}window: required (a list of cycles of sensor values)")
    window = window_array(body["window"], f"{prefix}window", n_sensors)
    if isinstance(window, list):
        raise SchemaError(window)
    if len(window) < min_cycles:
        raise InputError(f"{prefix}window: {len(window)} cycles; the models need a window of at "
                         f"least {min_cycles} cycles")
    cycle = previous = None
    cycles = body.get("cycles")
    if cycles is not None:
        if not isinstance(cycles, list) or len(cycles) != len(window):
            raise InputError(f"{prefix}cycles: give one cycle per row of the window "
                             f"({len(window)})")
        for k, value in enumerate(cycles):
            problem = _number_problem(value, f"{prefix}cycles[{k}]")
            if problem:
                raise InputError(problem.text())
        steps = np.diff(np.asarray(cycles, dtype=float))
        if (steps <= 0).any():
            k = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise InputError(f"{prefix}cycles[{k}]: cycle {cycles[k]:g} does not come after "
                             f"{cycles[k - 1]:g} (cycles must increase)")
        cycle = float(cycles[-1])
        previous = float(cycles[-2]) if len(cycles) > 1 else None
    elif body.get("cycle") is not None:
        problem = _number_problem(body["cycle"], f"{prefix}cycle")
        if problem:
            raise InputError(problem.text())
        cycle = float(body["cycle"])
    return DetectItem(machine, window, timestamp, cycle, f"{prefix}window", previous)


def detect_request(request: Request, n_sensors: int, min_cycles: int, batch: bool
                   ) -> tuple[list[DetectItem], str | None, float | None]:
    """The windows of a detect (or batch) request, the model and the threshold."""
    body = read_json(request)
    if not isinstance(body, dict):
        raise InputError("the JSON body must be an object: {\"machine_id\", \"window\", "
                         "\"timestamp\"}" + (" inside {\"windows\": [...]}" if batch else ""))
    model = parse_model(body.get("model"))
    threshold = parse_threshold(body.get("threshold"))
    if not batch:
        return [detect_item(body, "", n_sensors, min_cycles)], model, threshold
    unknown = sorted(set(body) - set(DetectBatchBody.model_fields))
    if unknown:
        raise InputError(f"{unknown[0]}: unknown field; send windows (a list), model, threshold")
    windows = body.get("windows")
    if not isinstance(windows, list) or not windows:
        raise InputError("windows: must be a non-empty list of {machine_id, window, timestamp}")
    limit = int(current_app.config["TIMESERIES_MAX_WINDOWS"])
    if len(windows) > limit:
        raise InputError(f"windows: {len(windows)} windows; at most {limit} in one call",
                         code=413)
    return [detect_item(w, f"windows[{k}]", n_sensors, min_cycles)
            for k, w in enumerate(windows)], model, threshold
