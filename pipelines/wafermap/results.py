"""The wafer-map results table: what a results CSV holds for each classified map.

One source for the web app's results CSV (``webapp.modules.wafermap.service``) and the batch
scorer's results files (``pipelines.wafermap.batch``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.core.csvout import with_flagged


def results_frame(records: Sequence[dict], names: Sequence[str], classes: Sequence[str],
                  review_level: float, model_version: str,
                  labels: Sequence[str] | None = None, first: int = 1) -> pd.DataFrame:
    """Every map (``records`` from :meth:`WafermapPredictor.predict`), numbered from
    ``first``: its class (and true label, when the file has them), confidence, review flag
    and all probabilities."""
    frame = pd.DataFrame({
        "index": np.arange(first, first + len(records)),
        "name": pd.Series(names, dtype="string"),
        "class": [r["class"] for r in records],
        "confidence": [r["confidence"] for r in records],
        "needs_review": [r["needs_review"] for r in records],
        "review_level": review_level,
        "model": model_version,
    })
    if labels is not None:
        frame.insert(3, "label", pd.Series(labels, dtype="string"))
    for c in classes:
        frame[f"p_{c}"] = [r["probabilities"][c] for r in records]
    return with_flagged(frame, "needs_review")
