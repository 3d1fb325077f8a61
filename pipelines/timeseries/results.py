"""The time-series results table: what a results CSV holds for each scored cycle.

One source for the web app's results CSV (``webapp.modules.timeseries.service``) and the
batch scorer's results files (``pipelines.timeseries.batch``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.core.csvout import with_flagged
from pipelines.timeseries.ingest import Series
from pipelines.timeseries.predict import Scored


def results_frame(series: Series, scored: Scored) -> pd.DataFrame:
    """The per-cycle results CSV: every row of the file, in file order."""
    top = scored.top or [[] for _ in range(len(scored.scores))]
    frame = pd.DataFrame({
        "machine_id": pd.Series(series.machines, dtype="string"),
        "cycle": series.cycles,
    })
    if series.timestamps is not None:
        frame["timestamp"] = pd.Series(series.timestamps, dtype="string")
    frame["padded_window"] = scored.padded
    frame["score"] = scored.scores
    frame["threshold"] = scored.threshold
    frame["is_anomaly"] = scored.flagged
    frame["rul"] = np.round(scored.rul, 1)
    for k in range(3):
        frame[f"top_sensor_{k + 1}"] = pd.Series([t[k] if len(t) > k else "" for t in top],
                                                 dtype="string")
    frame["model"] = scored.model_version
    return with_flagged(frame, "is_anomaly")
