"""The inspection results table: what a results CSV holds for each scored photo.

One source for the web app's results CSV (``webapp.modules.inspection.service``) and the
batch scorer's results files (``pipelines.inspection.batch``), and of the verdict's words.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.core.csvout import with_flagged

VERDICT_WORDS = ("defective", "good")  # (flagged, not flagged): API, CSV and History


def verdict(is_anomaly: bool) -> str:
    """The word the API and the CSV give a decision."""
    return VERDICT_WORDS[0] if is_anomaly else VERDICT_WORDS[1]


def results_frame(records: Sequence[dict], threshold: float, model_version: str,
                  first: int = 1) -> pd.DataFrame:
    """Every image (``records`` from :meth:`InspectionPredictor.predict`, each with its
    ``name`` and ``notes``), numbered from ``first``: its score, the threshold, the verdict,
    conversions."""
    return with_flagged(pd.DataFrame({
        "index": np.arange(first, first + len(records)),
        "file": pd.Series([r["name"] for r in records], dtype="string"),
        "anomaly_score": [r["anomaly_score"] for r in records],
        "threshold": threshold,
        "is_anomaly": [r["is_anomaly"] for r in records],
        "verdict": [verdict(r["is_anomaly"]) for r in records],
        "notes": pd.Series(["; ".join(r["notes"]) for r in records], dtype="string"),
        "model": model_version,
    }), "is_anomaly")
