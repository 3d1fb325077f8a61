"""Drift of an uploaded history: its readings against the training file's range per sensor.

The release keeps, in ``drift_reference.json`` (:mod:`pipelines.core.drift`), the smallest and
largest reading of every sensor the models use over the whole training file (every engine:
the fitted ones and the validation ones the thresholds were set on). A scored history's
drift (:func:`range_drift`) is the statistic ``share_outside_range``: the share of its
readings of those sensors outside that range, alerting at ``RANGE_ALERT``; the detail names
the sensors with the largest share outside. The training file itself scores 0.

``python -m pipelines.timeseries.reference [--data DIR] [--artifacts DIR]`` adds the file to
an existing release (checked against the training file's sha256 in the manifest) without
retraining; training writes it too.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.core.drift import REFERENCE_FILE, drift_record, write_reference
from pipelines.timeseries.ingest import Series

REFERENCE_ROLE = "each model sensor's training range (smallest, largest reading), for drift"
RANGE_ALERT = 0.05  # share of readings outside the training range that counts as drifted
TOP_SENSORS = 5


def _columns(series: Series, sensors: list[str]) -> np.ndarray:
    index = {s: j for j, s in enumerate(series.sensors)}
    return series.values[:, [index[s] for s in sensors]]


def training_ranges(series: Series, sensors: list[str]) -> dict:
    """``{"statistic": "training_range", "sensors", "low", "high"}``: each sensor's smallest
    and largest observed reading in ``series`` (the training file)."""
    X = _columns(series, sensors)
    return {"statistic": "training_range", "sensors": list(sensors),
            "low": [float(v) for v in np.nanmin(X, axis=0)],
            "high": [float(v) for v in np.nanmax(X, axis=0)]}


def range_counts(reference: dict, series: Series) -> dict[str, np.ndarray]:
    """Per sensor of the reference, over ``series``: readings ``observed``, readings
    ``outside`` the training range, the smallest (``min``) and largest (``max``) reading.
    Counts of several parts of a history add up (:func:`add_range_counts`), so a batch job
    scoring it a chunk at a time keeps only these."""
    X = _columns(series, reference["sensors"])
    low, high = np.asarray(reference["low"]), np.asarray(reference["high"])
    return {"observed": (~np.isnan(X)).sum(axis=0), "outside": ((X < low) | (X > high)).sum(axis=0),
            "min": np.fmin.reduce(X, axis=0, initial=np.inf),
            "max": np.fmax.reduce(X, axis=0, initial=-np.inf)}


def add_range_counts(a: dict | None, b: dict) -> dict:
    """The counts of two parts of a history together (``a`` None: ``b``)."""
    if a is None:
        return b
    return {"observed": a["observed"] + b["observed"], "outside": a["outside"] + b["outside"],
            "min": np.fmin(a["min"], b["min"]), "max": np.fmax(a["max"], b["max"])}


def range_drift(reference: dict, series: Series | None = None, top: int = TOP_SENSORS, *,
                counts: dict | None = None) -> dict:
    """The drift record of ``series`` (:func:`pipelines.core.drift.drift_record`), or of its
    :func:`range_counts`: the share of its observed readings of the reference's sensors
    outside their training range.

    Detail: ``worst_sensors`` (at most ``top`` with any reading outside, largest share first:
    ``{"sensor", "share_outside", "min", "max", "train_low", "train_high"}``) and
    ``n_readings``.
    """
    sensors = reference["sensors"]
    counts = range_counts(reference, series) if counts is None else counts
    low, high = np.asarray(reference["low"]), np.asarray(reference["high"])
    n = int(counts["observed"].sum())
    share = float(counts["outside"].sum() / n) if n else 0.0
    per_sensor = counts["outside"] / np.maximum(counts["observed"], 1)
    worst = [int(j) for j in np.argsort(-per_sensor, kind="stable")[:top] if per_sensor[j] > 0]
    detail = {"n_readings": n, "worst_sensors": [
        {"sensor": sensors[j], "share_outside": float(per_sensor[j]),
         "min": float(counts["min"][j]), "max": float(counts["max"][j]),
         "train_low": float(low[j]), "train_high": float(high[j])} for j in worst]}
    named = f"; most: {', '.join(d['sensor'] for d in detail['worst_sensors'][:3])}" \
        if worst else ""
    return drift_record(
        "share_outside_range", share, RANGE_ALERT,
        f"readings outside the training range per sensor: {100 * share:.1f}% "
        f"(alert at {100 * RANGE_ALERT:.0f}%){named}", detail)


def write_range_reference(release: Path, series: Series, sensors: list[str]) -> Path:
    """Write the training ranges into ``release`` (not yet listed in its manifest)."""
    return write_reference(release, training_ranges(series, sensors))


def _add(data: Path, release: Path, manifest: dict) -> tuple[dict[str, str], str]:
    from pipelines.timeseries.fingerprint import release_series

    series, sensors = release_series(data, release, manifest)
    path = write_range_reference(release, series, sensors)
    return ({REFERENCE_FILE: REFERENCE_ROLE},
            f"{path}: training ranges of {len(sensors)} sensors over {len(series):,} rows")


def main(argv: list[str] | None = None) -> int:
    from pipelines.core.backfill import backfill_main
    from pipelines.timeseries import MODULE

    return backfill_main(argv, description=__doc__.split("\n\n")[0], module=MODULE.name,
                         data_help="a folder holding cmapss/train_FD001.txt.gz (or the file)",
                         add=_add)


if __name__ == "__main__":
    raise SystemExit(main())
