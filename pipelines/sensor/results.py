"""The sensor results table: what a results CSV holds for each scored wafer.

One source for the web app's results CSV (``webapp.modules.sensor.service``) and the batch
scorer's results files (``pipelines.sensor.batch``): the predictor's table with the file's
labels and extra columns beside it, the threshold and model beside each decision, and the
shared ``flagged`` word.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.core.csvout import with_flagged
from pipelines.sensor.ingest.table import SensorTable


def with_extras(results: pd.DataFrame, table: SensorTable) -> pd.DataFrame:
    """Labels and the file's extra columns (as text) beside the scores (``results`` changed
    in place)."""
    if table.labels is not None:
        results["label"] = table.labels.astype(np.int8)
    if table.extra is not None:
        at = 1
        for column in table.extra.columns:
            name = column if column not in results.columns else f"{column} (input)"
            results.insert(at, name, table.extra[column].to_numpy())
            at += 1
    return results


def results_csv_frame(results: pd.DataFrame, threshold: float, model_version: str) -> pd.DataFrame:
    """The results CSV's table: the rows, the threshold and model beside each decision."""
    results = results.drop(columns=[c for c in results if c.endswith(("_low", "_high"))])
    at = results.columns.get_loc("is_fault") + 1
    results.insert(at, "threshold", threshold)
    results.insert(at + 1, "model", model_version)
    return with_flagged(results, "is_fault")
