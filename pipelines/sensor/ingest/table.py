"""Read sensor CSVs in either real layout and map them to one schema of 590 sensors.

Layouts (columns map to sensors by position):
- SECOM (``uci-secom.csv``): ``Time``, ``0`` .. ``589``, optional ``Pass/Fail`` (1 = fail).
- Wafer batch files: a wafer-name column (header blank, ``Unnamed: 0`` or ``Wafer``),
  ``Sensor-1`` .. ``Sensor-590``, optional ``Good/Bad`` (+1 = bad wafer).

The same function parses training files, prediction batches and user uploads, so what the
web app accepts is exactly what the pipelines accept.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from pipelines.core.problems import Problem, SchemaError, coerce_numeric
from pipelines.sensor.schema import ID_HEADERS, LABEL_COLUMNS, N_SENSORS, SENSOR_COLUMNS

logger = logging.getLogger(__name__)


@dataclass
class SensorTable:
    """Sensor readings mapped to the 590-sensor schema.

    ``values`` is (rows, 590) float with NaN for missing cells; ``labels`` is 1 for a failing
    wafer and 0 for a passing one, or None when the file has no label column.
    """

    ids: list[str]
    values: np.ndarray
    id_column: str
    layout: str
    labels: np.ndarray | None = None
    times: pd.Series | None = None
    warnings: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_missing(self) -> int:
        """Number of empty cells (they are imputed before scoring)."""
        return int(np.isnan(self.values).sum())


def _label_to_binary(series: pd.Series, column: str, file: str) -> tuple[np.ndarray, list[Problem]]:
    values, problems = coerce_numeric(series.to_frame(column), file)
    labels = values[:, 0]
    odd = ~np.isin(labels, (-1.0, 1.0))
    for r in np.flatnonzero(odd)[:20]:
        problems.append(Problem(f"label must be -1 (good) or 1 (bad), got '{series.iat[r]}'",
                                file=file, row=int(r) + 1, column=column))
    return (labels == 1).astype(np.int8), problems


def _id_problem(first: str, file: str) -> Problem | None:
    if first.strip().lower() in ID_HEADERS or first.strip().lower().startswith("unnamed"):
        return None
    return Problem(f"the first column must be the wafer id (header 'Wafer', 'Time' or blank); "
                   f"found '{first}'", file=file, column=first)


def parse_sensor_frame(frame: pd.DataFrame, file: str = "upload.csv",
                       require_labels: bool = False) -> SensorTable:
    """Map a raw frame (as read from CSV) to a :class:`SensorTable`.

    Raises :class:`SchemaError` listing every problem: missing id column, wrong number of
    sensor columns, non-numeric cells, bad labels, empty ids.
    """
    if frame.shape[0] == 0:
        raise SchemaError([Problem("the file has a header but no data rows", file=file)])
    columns = [str(c) for c in frame.columns]
    label_col = next((c for c in columns if c in LABEL_COLUMNS), None)
    if require_labels and label_col is None:
        raise SchemaError([Problem("training data needs a label column "
                                   "('Good/Bad' or 'Pass/Fail')", file=file)])
    problems: list[Problem] = []
    sensor_part = [c for c in columns[1:] if c != label_col]
    n_expected = N_SENSORS + 1 + (label_col is not None)
    if len(columns) == N_SENSORS and columns[0] in ("Sensor-1", "0"):
        raise SchemaError([Problem("missing id column: the first column must be the wafer id "
                                   "(wafer name or timestamp), followed by 590 sensor columns",
                                   file=file)])
    id_problem = _id_problem(columns[0], file)
    if id_problem:
        problems.append(id_problem)
    if len(sensor_part) != N_SENSORS:
        problems.append(Problem(
            f"expected {n_expected} columns (id, 590 sensors{', label' if label_col else ''}), "
            f"found {len(columns)}", file=file))
    if problems:
        raise SchemaError(problems)

    layout = "secom" if columns[0].strip().lower() == "time" or sensor_part[0] == "0" else "batch"
    values, problems = coerce_numeric(frame[sensor_part], file)
    labels = None
    if label_col is not None:
        labels, label_problems = _label_to_binary(frame[label_col], label_col, file)
        problems += label_problems
    raw_ids = frame.iloc[:, 0]
    missing_id = raw_ids.isna() | raw_ids.astype("string").str.strip().eq("")
    for r in np.flatnonzero(missing_id.to_numpy(dtype=bool))[:20]:
        problems.append(Problem("the wafer id is empty", file=file, row=int(r) + 1,
                                column=columns[0] or "id"))
    if problems:
        raise SchemaError(problems)
    id_name = columns[0] if columns[0] and not columns[0].lower().startswith("unnamed") else "Wafer"
    return SensorTable(ids=raw_ids.astype(str).tolist(), values=values, id_column=id_name,
                       layout=layout, labels=labels)


def read_sensor_csv(source: str | Path | IO[bytes] | bytes, file: str | None = None,
                    require_labels: bool = False) -> SensorTable:
    """Read a sensor CSV (path, bytes or binary stream; ``.gz`` paths too) into a SensorTable."""
    name = file or (Path(source).name if isinstance(source, (str, Path)) else "upload.csv")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        frame = pd.read_csv(source, low_memory=False)
    except pd.errors.EmptyDataError:
        raise SchemaError([Problem("the file is empty", file=name)]) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SchemaError([Problem(f"not a readable CSV file ({exc})".replace("\n", " "),
                                   file=name)]) from None
    return parse_sensor_frame(frame, name, require_labels=require_labels)


def table_to_frame(table: SensorTable) -> pd.DataFrame:
    """The table in batch layout: id column, Sensor-1..590 (and Good/Bad when labelled)."""
    frame = pd.DataFrame(table.values, columns=SENSOR_COLUMNS)
    frame.insert(0, table.id_column, table.ids)
    if table.labels is not None:
        frame["Good/Bad"] = np.where(table.labels == 1, 1, -1)
    return frame


def table_from_instances(instances: list, ids: list | None = None,
                         source: str = "request") -> SensorTable:
    """Build a table from JSON instances: lists of 590 numbers/null, or ``{"Sensor-N": value}`` dicts.

    In the dict form, sensors left out are missing (imputed); unknown keys are an error so a
    misspelt sensor name is never silently ignored.
    """
    if not isinstance(instances, list) or not instances:
        raise SchemaError([Problem("'instances' must be a non-empty list of rows", file=source)])
    index = {name: j for j, name in enumerate(SENSOR_COLUMNS)}
    values = np.full((len(instances), N_SENSORS), np.nan)
    problems: list[Problem] = []
    for r, row in enumerate(instances):
        if isinstance(row, dict):
            unknown = [k for k in row if k not in index]
            if unknown:
                problems.append(Problem(f"unknown sensor name(s) {unknown[:5]}; use Sensor-1 .. "
                                        f"Sensor-{N_SENSORS}", file=source, row=r + 1))
            items = [(index[k], k, v) for k, v in row.items() if k in index]
        elif isinstance(row, list):
            if len(row) != N_SENSORS:
                problems.append(Problem(f"expected {N_SENSORS} values, found {len(row)}",
                                        file=source, row=r + 1))
                continue
            items = [(j, SENSOR_COLUMNS[j], v) for j, v in enumerate(row)]
        else:
            problems.append(Problem("each instance must be a list of 590 values or an object "
                                    "keyed by sensor name", file=source, row=r + 1))
            continue
        for j, name, v in items:
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if len(problems) < 50:
                    problems.append(Problem(f"'{v}' is not a number", file=source, row=r + 1,
                                            column=name))
                continue
            values[r, j] = v
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(instances)):
        problems.append(Problem(f"'ids' must be a list with one id per instance "
                                f"({len(instances)})", file=source))
    if problems:
        raise SchemaError(problems)
    row_ids = [str(i) for i in ids] if ids is not None else [str(i + 1) for i in range(len(instances))]
    return SensorTable(ids=row_ids, values=values, id_column="id", layout="json")
