"""Time-series detectors: every one takes standardised windows, (windows, cycles, sensors).

Those with ``uses_history`` (the XGBoost models) also take ``history=``, each window's
machine history slopes (``transform.history_slopes``); :func:`history_kwargs` passes it only
to them.
"""
from __future__ import annotations

import numpy as np


def history_kwargs(detector, history: np.ndarray | None) -> dict:
    """``{"history": history}`` for a detector that uses it, else ``{}``."""
    return {"history": history} if getattr(detector, "uses_history", False) else {}
