"""Sensor histories in batch (``python -m pipelines.score timeseries``): ``dask.dataframe``
partitioned by machine.

Inputs: C-MAPSS text files or CSV files with a header (plain or ``.gz``), all of one layout,
e.g. a month of daily files, each holding every machine's cycles of that day. A machine's
score at a cycle depends on its history (the window ending there, its wear-rate slopes from
its first row), so **a machine's whole history must be in one partition**:

1. ``dask.dataframe.read_csv`` reads each file as one partition, every cell as text (as the
   web app reads an upload), and numbers its rows in input order (files sorted by path, then
   row in the file);
2. the rows are shuffled on the machine id (``DataFrame.shuffle``: a hash of the id picks
   the partition, ``partitions`` of them, default as many as there are files), so all rows
   of a machine meet in one partition, whichever files they came from;
3. each partition is put back in input order, parsed by the web app's code (``cmapss_series``
   or ``csv_series``: cycles must increase within each machine) and scored machine by
   machine by :meth:`TimeseriesPredictor.score_series`, exactly as one upload holding those
   machines' whole histories would be.

The results table is the predict API's (``machine_id``, ``cycle``, score, flag, RUL, top
sensors), with ``source_file``. A machine's rows are in input order within its partition;
partitions hold whole machines.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.batch import BatchError, relative_name
from pipelines.timeseries.ingest import (cmapss_series, csv_series, looks_like_cmapss,
                                         machine_column_of)
from pipelines.timeseries.results import results_frame
from pipelines.timeseries.schema import CMAPSS_COLUMNS

PREDICTOR = "pipelines.timeseries.predict:TimeseriesPredictor"
NOUN = "cycles"
EXTENSIONS = (".txt", ".txt.gz", ".csv", ".csv.gz")
PATH_COLUMN = "__fablens_path"
ORDER_COLUMN = "__fablens_order"  # file number * 2**32 + row in the file: input order
HEAD_BYTES = 64 * 1024


def _head(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


def partitions(files: list[Path], root: Path, *, partition_size: int | None = None,
               partitions: int | None = None, machine_column: str | None = None,
               time_column: str | None = None, sensors: list[str] | None = None):
    """The files' rows shuffled so that each machine's rows share a partition, and what
    :func:`score_partition` needs to parse them (the layout, the CSV's columns)."""
    import dask.dataframe as dd

    named = machine_column or time_column or sensors
    kinds = {f: looks_like_cmapss(_head(f)) and not named for f in files}
    if len(set(kinds.values())) > 1:
        odd = next(f for f in files if kinds[f] != kinds[files[0]])
        raise BatchError(f"{relative_name(odd, root)} is not of "
                         f"{relative_name(files[0], root)}'s layout; score C-MAPSS text and "
                         f"CSV files apart")
    cmapss = kinds[files[0]]
    common = dict(dtype=str, keep_default_na=False, blocksize=None,
                  include_path_column=PATH_COLUMN)
    if cmapss:
        frame = dd.read_csv([str(f) for f in files], sep=r"\s+", header=None,
                            names=CMAPSS_COLUMNS, **common)
        key = "unit"
    else:
        frame = dd.read_csv([str(f) for f in files], **common)
        columns = [str(c) for c in frame.columns if c != PATH_COLUMN]
        key = machine_column_of(columns, machine_column, files[0].name)
    meta = frame._meta.assign(**{ORDER_COLUMN: pd.Series(dtype="int64")})
    frame = frame.map_partitions(_numbered, meta=meta)
    frame = frame.shuffle(on=key, npartitions=partitions or frame.npartitions,
                          shuffle_method="tasks")
    return frame, {"layout": "cmapss" if cmapss else "csv", "root": str(root),
                   "machine_column": machine_column, "time_column": time_column,
                   "sensors": sensors}


def _numbered(frame: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    """A file's rows (one file per partition) with their input order."""
    number = 0 if partition_info is None else int(partition_info["number"])
    return frame.assign(**{ORDER_COLUMN: number * 2**32 + np.arange(len(frame),
                                                                     dtype=np.int64)})


def score_partition(predictor, frame: pd.DataFrame, *, model: str | None = None,
                    threshold: float | None = None, layout: str = "csv", root: str = "",
                    machine_column: str | None = None, time_column: str | None = None,
                    sensors: list[str] | None = None) -> pd.DataFrame:
    """The predict API's results table of the whole machines in one partition."""
    if not len(frame):
        return pd.DataFrame()
    frame = frame.sort_values(ORDER_COLUMN, kind="stable").reset_index(drop=True)
    sources = [relative_name(p, root) for p in frame.pop(PATH_COLUMN).astype(str)]
    frame = frame.drop(columns=[ORDER_COLUMN]).astype(object)
    shown = list(dict.fromkeys(sources))
    name = shown[0] if len(shown) == 1 else f"{shown[0]} (+{len(shown) - 1} more files)"
    if layout == "cmapss":
        series = cmapss_series(frame, name)
    else:
        series = csv_series(frame, name, machine_column=machine_column,
                            time_column=time_column, sensors=sensors)
    scored = predictor.score_series(series, model, threshold)
    out = results_frame(series, scored)
    out["source_file"] = pd.Series(sources, dtype="string")
    return out
