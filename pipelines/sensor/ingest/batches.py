"""Wafer sensor-fault batch files: file-name and content validation, and the labelled loader.

Fabs validate each incoming batch before it reaches a model. Each file gets a report: accepted,
or rejected with every reason (name pattern, column count, column names, an entirely empty
column, non-numeric cells).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from pipelines.core.problems import Problem, SchemaError, coerce_numeric
from pipelines.sensor.ingest.table import SensorTable, parse_sensor_frame
from pipelines.sensor.schema import N_SENSORS, SENSOR_COLUMNS

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^wafer_(?P<date>\d{8})_(?P<time>\d{6})\.csv(\.gz)?$")
SPARSE_FRACTION = 0.5  # a sensor missing this often overall may be empty in a whole file


@dataclass
class BatchReport:
    """Validation result for one batch file."""

    file: str
    rows: int = 0
    columns: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"file": self.file, "accepted": self.accepted, "rows": self.rows,
                "columns": self.columns, "reasons": [p.text() for p in self.problems]}


def check_file_name(name: str) -> list[Problem]:
    """The schema's naming rule: ``wafer_<DDMMYYYY>_<HHMMSS>.csv`` with a real date and time."""
    match = NAME_PATTERN.match(name)
    if not match:
        return [Problem("file name does not match wafer_<DDMMYYYY>_<HHMMSS>.csv", file=name)]
    try:
        datetime.strptime(match["date"] + match["time"], "%d%m%Y%H%M%S")
    except ValueError:
        return [Problem(f"file name has an impossible date/time stamp "
                        f"{match['date']}_{match['time']}", file=name)]
    return []


def check_columns(frame: pd.DataFrame, name: str, with_labels: bool) -> list[Problem]:
    """Column count and names against the schema (id, Sensor-1..590[, Good/Bad])."""
    expected = 1 + N_SENSORS + int(with_labels)
    if frame.shape[1] != expected:
        kind = "training" if with_labels else "prediction"
        return [Problem(f"expected {expected} columns for a {kind} file "
                        f"(wafer id, Sensor-1..Sensor-590{', Good/Bad' if with_labels else ''}), "
                        f"found {frame.shape[1]}", file=name)]
    names = [str(c) for c in frame.columns[1:1 + N_SENSORS]]
    wrong = [(i, n) for i, n in enumerate(names) if n != SENSOR_COLUMNS[i]]
    problems = [Problem(f"column {i + 2} is named '{'' if n.startswith('Unnamed') else n}', "
                        f"expected '{SENSOR_COLUMNS[i]}'", file=name, column=n)
                for i, n in wrong[:5]]
    if len(wrong) > 5:
        problems.append(Problem(f"{len(wrong) - 5} more columns are misnamed", file=name))
    if with_labels and str(frame.columns[-1]) != "Good/Bad":
        problems.append(Problem(f"last column must be 'Good/Bad', found '{frame.columns[-1]}'",
                                file=name))
    return problems


def check_empty_columns(frame: pd.DataFrame, name: str, optional: Iterable[str]) -> list[Problem]:
    """Columns with no value in any row, other than sensors known to be mostly missing."""
    optional = set(optional)
    empty = [str(c) for c in frame.columns[1:] if frame[c].isna().all()]
    empty = ["" if c.startswith("Unnamed") else c for c in empty]
    required_empty = [c for c in empty if c not in optional]
    if not required_empty:
        return []
    listed = ", ".join(required_empty[:5]) + (" ..." if len(required_empty) > 5 else "")
    return [Problem(f"{len(required_empty)} column(s) are entirely empty: {listed}", file=name,
                    column=required_empty[0])]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, low_memory=False)


def validate_batch_files(paths: Iterable[Path], with_labels: bool,
                         optional_empty: Iterable[str] | None = None
                         ) -> tuple[list[BatchReport], dict[str, pd.DataFrame]]:
    """Validate batch files; return one report per file and the frames of the accepted ones.

    ``optional_empty`` names sensors allowed to be empty in a whole file. When None, it is
    derived from the files with the right column count: a sensor missing in more than half
    of all their rows is sparse by nature, while an always-present sensor that is empty in a
    whole file means the export broke.
    """
    reports: list[BatchReport] = []
    shaped: dict[str, pd.DataFrame] = {}  # files with the right number of columns
    for path in sorted(Path(p) for p in paths):
        name = path.name
        report = BatchReport(file=name)
        reports.append(report)
        report.problems += check_file_name(name)
        try:
            frame = _read(path)
        except pd.errors.EmptyDataError:
            report.problems.append(Problem("the file is empty", file=name))
            continue
        report.rows, report.columns = frame.shape
        report.problems += check_columns(frame, name, with_labels)
        if report.columns == 1 + N_SENSORS + int(with_labels):
            _, cell_problems = coerce_numeric(frame.iloc[:, 1:1 + N_SENSORS], name, max_problems=10,
                                              max_per_column=1)
            report.problems += cell_problems
            shaped[name] = frame
    if optional_empty is None:
        optional_empty = sparse_sensors(shaped.values())
    for report in reports:
        if report.file in shaped:
            report.problems += check_empty_columns(shaped[report.file], report.file,
                                                   optional_empty)
    frames = {r.file: shaped[r.file] for r in reports if r.accepted}
    for report in reports:
        logger.info("%s: %s", report.file,
                    "accepted" if report.accepted else "rejected: " +
                    "; ".join(p.message for p in report.problems))
    return reports, frames


def sparse_sensors(frames: Iterable[pd.DataFrame]) -> list[str]:
    """Sensors missing in more than ``SPARSE_FRACTION`` of all rows of these frames."""
    frames = list(frames)
    if not frames:
        return []
    sensors = pd.concat([f.iloc[:, 1:1 + N_SENSORS].set_axis(SENSOR_COLUMNS, axis=1)
                         for f in frames], ignore_index=True)
    missing = sensors.isna().mean()
    return missing.index[missing > SPARSE_FRACTION].tolist()


def batch_files(directory: Path) -> list[Path]:
    """Every CSV (``.csv`` or ``.csv.gz``) in a batch directory."""
    return sorted(p for p in Path(directory).iterdir()
                  if p.name.endswith(".csv") or p.name.endswith(".csv.gz"))


def load_sensor_fault(directory: Path) -> tuple[SensorTable, list[BatchReport]]:
    """Load the accepted labelled files of ``Training_Batch_Files`` (or ``directory`` itself)."""
    directory = Path(directory)
    batch_dir = directory / "Training_Batch_Files" if (directory / "Training_Batch_Files").is_dir() \
        else directory
    reports, frames = validate_batch_files(batch_files(batch_dir), with_labels=True)
    if not frames:
        raise SchemaError([Problem(f"no valid labelled batch file in {batch_dir}")])
    tables = [parse_sensor_frame(frames[n], n, require_labels=True) for n in sorted(frames)]
    table = SensorTable(ids=[i for t in tables for i in t.ids],
                        values=np.vstack([t.values for t in tables]), id_column="Wafer",
                        layout="batch", labels=np.concatenate([t.labels for t in tables]))
    logger.info("loaded %d labelled wafers from %d accepted files", len(table), len(frames))
    return table, reports
