"""UCI SECOM loaders: ``uci-secom.csv(.gz)``, or the original ``secom.data`` + ``secom_labels.data``.

Real timestamps come from ``secom_labels.data`` (day-first). The ``Time`` column of the Kaggle
``uci-secom.csv`` swaps day and month for days <= 12, so it is used as the wafer id only.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.problems import Problem, SchemaError
from pipelines.sensor.ingest.table import SensorTable, read_sensor_csv
from pipelines.sensor.schema import N_SENSORS

logger = logging.getLogger(__name__)

LABELS_FILE = "secom_labels.data"
TIME_FORMAT = "%d/%m/%Y %H:%M:%S"


def read_secom_labels(path: Path) -> tuple[np.ndarray, pd.Series]:
    """Parse ``secom_labels.data``: ``<-1|1> "dd/mm/yyyy HH:MM:SS"`` per line -> (labels 0/1, times)."""
    frame = pd.read_csv(path, sep=" ", header=None, names=["label", "time"], quotechar='"')
    labels = (frame["label"] == 1).astype(np.int8).to_numpy()
    times = pd.to_datetime(frame["time"], format=TIME_FORMAT)
    return labels, times


def read_secom_data(path: Path) -> np.ndarray:
    """Parse the original space-separated ``secom.data`` (``NaN`` for missing) into (rows, 590)."""
    values = pd.read_csv(path, sep=r"\s+", header=None, na_values=["NaN"]).to_numpy(dtype=float)
    if values.shape[1] != N_SENSORS:
        raise SchemaError([Problem(f"expected {N_SENSORS} columns, found {values.shape[1]}",
                                   file=path.name)])
    return values


def load_secom(directory: Path) -> SensorTable:
    """Load SECOM from a directory holding either layout; timestamps from the labels file if present."""
    directory = Path(directory)
    labels_path = directory / LABELS_FILE
    csv = next((directory / n for n in ("uci-secom.csv", "uci-secom.csv.gz")
                if (directory / n).exists()), None)
    if csv is not None:
        table = read_sensor_csv(csv, require_labels=True)
    elif (directory / "secom.data").exists() and labels_path.exists():
        values = read_secom_data(directory / "secom.data")
        labels, times = read_secom_labels(labels_path)
        table = SensorTable(ids=times.dt.strftime("%Y-%m-%d %H:%M:%S").tolist(), values=values,
                            id_column="Time", layout="secom", labels=labels, times=times)
    else:
        raise FileNotFoundError(f"no SECOM data in {directory}: expected uci-secom.csv(.gz) or "
                                f"secom.data with {LABELS_FILE}")
    if labels_path.exists():
        labels, times = read_secom_labels(labels_path)
        if len(labels) != len(table) or not np.array_equal(labels, table.labels):
            raise SchemaError([Problem(f"{LABELS_FILE} does not match the data row for row",
                                       file=LABELS_FILE)])
        table.times = times
    logger.info("loaded SECOM: %d wafers, %d fail", len(table), int(table.labels.sum()))
    return table
