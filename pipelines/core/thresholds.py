"""Thresholds from a target false-alarm rate, and what a threshold means on normal data.

A row is flagged when ``score >= threshold``. The false-alarm rate of a threshold is the
share of normal validation rows it flags: measured exactly at the threshold training chose
(recorded in the manifest as ``measured_false_alarm_rate``), and read off the quantiles of
normal scores stored beside it elsewhere. :func:`false_alarm_curve` turns both into one curve
"threshold -> share of normal rows flagged", through the measured point, that the server uses
and hands to the pages, so the rule lives here only. The target a threshold was chosen for
(``target_false_alarm_rate``) is a target, not a measurement.
"""
from __future__ import annotations

import math

import numpy as np


def flagged(scores, threshold: float, below: bool = False) -> np.ndarray:
    """The one decision rule: a score at or above ``threshold`` is flagged, or with ``below``
    (a confidence under a "needs review" level) a score under it. Pages receive ``below``
    with their config and decide with the same rule (``static/js/lib/threshold.js``)."""
    scores = np.asarray(scores, dtype=float)
    return scores < threshold if below else scores >= threshold


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
    return float(np.mean(flagged(normal_scores, threshold)))


def score_quantiles(normal_scores: np.ndarray, n: int = 101) -> list[float]:
    """Quantiles of normal scores at ``n`` evenly spaced levels, stored in the manifest."""
    return [float(q) for q in np.quantile(np.asarray(normal_scores), np.linspace(0, 1, n))]


MEASURED_KEYS = ("measured_false_alarm_rate", "normal_false_alarm_rate")


def measured_false_alarm_rate(section: dict) -> float | None:
    """The false-alarm rate measured on the normal validation scores at the threshold of a
    manifest's threshold section (``normal_false_alarm_rate`` in older inspection manifests),
    or None where training did not record one."""
    for key in MEASURED_KEYS:
        if isinstance(section.get(key), (int, float)):
            return float(section[key])
    return None


def false_alarm_curve(quantiles: list[float], measured: tuple[float, float] | None = None
                      ) -> dict[str, list[float]]:
    """The curve through (quantile at level p, 1 - p): the share of normal rows at or above,
    and through ``measured`` = (threshold, measured false-alarm rate) when given.

    The quantiles are 101 points of the normal scores, so between them the curve is an
    approximation; at the measured threshold it is the measured rate. Quantile points on the
    wrong side of the measured one (lower threshold but fewer flagged, or higher but more) are
    dropped, so the curve never rises. Between its points it is linear; below the lowest
    normal score every normal row is flagged (1.0), at or above the highest none is (0.0):
    reading it is plain clamped linear interpolation (:func:`rate_on_curve`, and the page's
    ``interp``), with no rule of its own.
    """
    q = [float(v) for v in quantiles]
    if len(q) < 2:
        raise ValueError("need at least two quantiles for a false-alarm curve")
    n = len(q) - 1
    points = [(t, 1.0 - i / n) for i, t in enumerate(q)]
    if measured is not None:
        t0, r0 = float(measured[0]), float(measured[1])
        points = [(t, r) for t, r in points if (t < t0 and r >= r0) or (t > t0 and r <= r0)]
        points = sorted(points + [(t0, r0)], key=lambda p: p[0])
    return {"thresholds": [t for t, _ in points], "rates": [r for _, r in points]}


def rate_on_curve(curve: dict[str, list[float]], threshold: float) -> float:
    """The approximate share of normal rows flagged at ``threshold``, read off the curve."""
    return float(np.interp(threshold, curve["thresholds"], curve["rates"]))


def flag_rate_check(flagged: int, rows: int, expected: float, z: float = 1.96) -> dict:
    """Is a flag rate in line with a threshold's false-alarm rate? The observed rate with its
    Wilson interval (95% by default; rows counted as independent, so on batches of related
    items the interval is too narrow) and ``verdict``: "higher", "lower" or "in line"."""
    if rows <= 0:
        raise ValueError("need at least one row to check a flag rate")
    p = flagged / rows
    denominator = 1 + z * z / rows
    centre = (p + z * z / (2 * rows)) / denominator
    half = z * math.sqrt(p * (1 - p) / rows + z * z / (4 * rows * rows)) / denominator
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    verdict = "higher" if low > expected else "lower" if high < expected else "in line"
    return {"rate": p, "low": low, "high": high, "expected": float(expected), "verdict": verdict}
