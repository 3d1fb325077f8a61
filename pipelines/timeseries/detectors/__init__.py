"""Time-series detectors: every one takes standardised windows, (windows, cycles, sensors).

Those with ``uses_history`` (the XGBoost models) also take ``history=``, each window's
machine history slopes (``transform.history_slopes``); :func:`history_kwargs` passes it only
to them. Those with ``uses_machines`` (a window network whose score averages its errors over
the machine's earlier windows, ``history_windows`` > 1) take ``machines=``, each window's
machine id, the windows listed machine by machine in cycle order; :func:`scoring_kwargs`
passes both where they are used.
"""
from __future__ import annotations

import numpy as np


def history_kwargs(detector, history: np.ndarray | None) -> dict:
    """``{"history": history}`` for a detector that uses it, else ``{}``."""
    return {"history": history} if getattr(detector, "uses_history", False) else {}


def scoring_kwargs(detector, history: np.ndarray | None = None,
                   machines: np.ndarray | None = None) -> dict:
    """What ``detector.score`` / ``explain`` take beside the windows: the history slopes
    (``uses_history``) and the windows' machine ids (``uses_machines``)."""
    return history_kwargs(detector, history) | (
        {"machines": machines} if getattr(detector, "uses_machines", False) else {})
