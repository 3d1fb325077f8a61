"""Thresholds from a target false-alarm rate, and what a threshold means on normal data.

A row is flagged when ``score >= threshold``. Training stores the quantiles of normal
(validation) scores in each manifest; :func:`false_alarm_curve` turns them into the curve
"threshold -> share of normal rows flagged" that the server uses and hands to the pages, so the
rule lives here only.
"""
from __future__ import annotations

import numpy as np


def threshold_at_false_alarm_rate(normal_scores: np.ndarray, target_far: float) -> float:
    """Smallest threshold at which at most ``target_far`` of normal scores are flagged."""
    scores = np.sort(np.asarray(normal_scores, dtype=float))
    if scores.size == 0:
        raise ValueError("need at least one normal score to choose a threshold")
    if not 0.0 < target_far < 1.0:
        raise ValueError(f"target false-alarm rate must be in (0, 1), got {target_far}")
    allowed = int(np.floor(target_far * scores.size))  # normal rows we may flag
    if allowed == 0:
        return float(np.nextafter(scores[-1], np.inf))
    # flag the top `allowed` scores: threshold just above the next one down
    return float(np.nextafter(scores[-allowed - 1], np.inf))


def false_alarm_rate(normal_scores: np.ndarray, threshold: float) -> float:
    """Share of normal rows flagged at ``threshold`` (exact, from the scores themselves)."""
    return float(np.mean(np.asarray(normal_scores) >= threshold))


def score_quantiles(normal_scores: np.ndarray, n: int = 101) -> list[float]:
    """Quantiles of normal scores at ``n`` evenly spaced levels, stored in the manifest."""
    return [float(q) for q in np.quantile(np.asarray(normal_scores), np.linspace(0, 1, n))]


def false_alarm_curve(quantiles: list[float]) -> dict[str, list[float]]:
    """The curve through (quantile at level p, 1 - p): the share of normal rows at or above.

    Between its points the curve is linear; below the lowest normal score every normal row is
    flagged (1.0), at or above the highest none is (0.0): reading it is plain clamped linear
    interpolation (:func:`rate_on_curve`, and the page's ``interp``), with no rule of its own.
    """
    q = [float(v) for v in quantiles]
    if len(q) < 2:
        raise ValueError("need at least two quantiles for a false-alarm curve")
    n = len(q) - 1
    return {"thresholds": q, "rates": [1.0 - i / n for i in range(n + 1)]}


def rate_on_curve(curve: dict[str, list[float]], threshold: float) -> float:
    """The approximate share of normal rows flagged at ``threshold``, read off the curve."""
    return float(np.interp(threshold, curve["thresholds"], curve["rates"]))
