"""Sensor rows sent as JSON: lists of 590 numbers (or null), or objects keyed by sensor name.

A rectangular list of lists takes a vectorised path (one NumPy conversion, one type scan);
anything else is checked row by row, and every problem names its place in the body
(``instances[3][17]``) so a caller can find it.
"""
from __future__ import annotations

import numpy as np

from pipelines.core.problems import LimitError, Problem, SchemaError, out_of_range
from pipelines.sensor.ingest.table import SensorTable
from pipelines.sensor.schema import N_SENSORS, SENSOR_COLUMNS

MAX_PROBLEMS = 50
_NUMBER_TYPES = (int, float)


def _cell_problem(value, r: int, j: int, source: str) -> Problem:
    shown = "true" if value is True else "false" if value is False else repr(value)[:40]
    if type(value).__name__ == "NotANumber":  # NaN, Infinity or an endless integer literal
        return Problem(f"{shown} is not a finite number (send a number, or null when missing)",
                       file=source, path=f"instances[{r}][{j}]", column=SENSOR_COLUMNS[j])
    return Problem(f"{shown} is not a number (send a number or null)", file=source,
                   path=f"instances[{r}][{j}]", column=SENSOR_COLUMNS[j])


def _fast_matrix(instances: list) -> np.ndarray | None:
    """The (rows, 590) float matrix when every row is a list of 590 numbers or nulls, else None."""
    try:
        cells = np.array(instances, dtype=object)
    except ValueError:  # ragged
        return None
    if cells.ndim != 2 or cells.shape[1] != N_SENSORS:
        return None
    kinds = set(map(type, cells.ravel().tolist()))
    if not kinds <= {int, float, type(None)}:
        return None
    try:
        return cells.astype(float)  # None -> nan
    except OverflowError:  # an int beyond float range
        return None


def _slow_matrix(instances: list, source: str) -> tuple[np.ndarray, list[Problem]]:
    """Row by row, for objects, ragged rows and bad cells: the matrix and located problems."""
    index = {name: j for j, name in enumerate(SENSOR_COLUMNS)}
    values = np.full((len(instances), N_SENSORS), np.nan)
    problems: list[Problem] = []
    for r, row in enumerate(instances):
        if len(problems) >= MAX_PROBLEMS:
            break
        if isinstance(row, dict):
            unknown = [k for k in row if k not in index]
            if unknown:
                problems.append(Problem(f"unknown sensor name(s) {[str(k)[:30] for k in unknown[:3]]}; "
                                        f"use Sensor-1 .. Sensor-{N_SENSORS}", file=source,
                                        path=f"instances[{r}]"))
            items = [(index[k], v) for k, v in row.items() if k in index]
        elif isinstance(row, list):
            if len(row) != N_SENSORS:
                problems.append(Problem(f"expected {N_SENSORS} values, found {len(row)}",
                                        file=source, path=f"instances[{r}]"))
                continue
            items = list(enumerate(row))
        else:
            problems.append(Problem("each instance must be a list of 590 values or an object "
                                    "keyed by sensor name", file=source, path=f"instances[{r}]"))
            continue
        for j, v in items:
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, _NUMBER_TYPES):
                if len(problems) < MAX_PROBLEMS:
                    problems.append(_cell_problem(v, r, j, source))
                continue
            try:
                values[r, j] = v
            except OverflowError:
                values[r, j] = np.inf  # reported as out of range below
    return values, problems


def _json_paths(problems: list[Problem]) -> list[Problem]:
    """Range problems located by JSON path instead of file row."""
    out = []
    for p in problems:
        if p.row is not None and p.column in SENSOR_COLUMNS:
            j = SENSOR_COLUMNS.index(p.column)
            p = Problem(p.message, p.file, path=f"instances[{p.row - 1}][{j}]", column=p.column)
        out.append(p)
    return out


def table_from_instances(instances: list, ids: list | None = None, source: str | None = None,
                         max_rows: int | None = None) -> SensorTable:
    """Build a table from JSON instances; :class:`SchemaError` lists what is wrong and where.

    The row count is checked before anything is built (:class:`LimitError`). In the object
    form, sensors left out are missing (imputed); unknown keys are an error so a misspelt
    sensor name is never silently ignored.
    """
    if not isinstance(instances, list) or not instances:
        raise SchemaError([Problem("'instances' must be a non-empty list of rows", file=source,
                                   path="instances")])
    if max_rows is not None and len(instances) > max_rows:
        raise LimitError([Problem(f"{len(instances)} instances is more than the {max_rows} row "
                                  f"limit; send them in several requests", file=source,
                                  path="instances")])
    values = _fast_matrix(instances)
    problems: list[Problem] = []
    if values is None:
        values, problems = _slow_matrix(instances, source)
    problems += _json_paths(out_of_range(values, SENSOR_COLUMNS, source))
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(instances)):
        problems.append(Problem(f"'ids' must be a list with one id per instance "
                                f"({len(instances)})", file=source, path="ids"))
    elif ids is not None:
        bad = next((k for k, i in enumerate(ids) if isinstance(i, bool) or
                    not isinstance(i, (str, int))), None)
        if bad is not None:
            problems.append(Problem("each id must be a string or an integer", file=source,
                                    path=f"ids[{bad}]"))
    if problems:
        raise SchemaError(problems[:MAX_PROBLEMS])
    row_ids = [str(i) for i in ids] if ids is not None else [str(i + 1) for i in range(len(instances))]
    return SensorTable(ids=row_ids, values=values, id_column="id", layout="json")
