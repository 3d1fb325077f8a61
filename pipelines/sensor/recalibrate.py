"""Recalibrate the sensor release's threshold on recent passing wafers.

The shipped threshold's false-alarm rate was measured on the training period; the time split
showed it does not carry over to later wafers. Given a CSV of recent passing wafers (any
layout the app accepts; rows labelled failing are left out), this sets the deciding model's
threshold so that ``target_far`` of their scores are flagged, and rewrites the release in one
step (copy, edit, swap), recording when and on what (file name, sha256, rows).
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Callable

from pipelines.core.artifacts import (atomic_directory, file_entries, now, read_manifest,
                                      sha256, write_manifest)
from pipelines.core.thresholds import (false_alarm_rate, score_quantiles,
                                       threshold_at_false_alarm_rate)
from pipelines.sensor.ingest.table import read_sensor_csv
from pipelines.sensor.predict import SensorPredictor
from pipelines.sensor.story import threshold_note

logger = logging.getLogger(__name__)

MIN_FLAGGED = 5  # at least this many wafers must sit above the new threshold


class RecalibrationError(ValueError):
    """The recalibration data cannot set a threshold (too few passing wafers, bad rate)."""


def recalibrate_sensor(release_dir: Path, data: Path, *, target_far: float | None = None,
                       model: str | None = None,
                       progress: Callable[[str], None] = lambda s: None) -> dict:
    """Set ``model``'s (default: the release's default) threshold from recent passing wafers.

    Returns the new threshold section. Needs at least ``MIN_FLAGGED / target_far`` wafers so
    the rate rests on at least ``MIN_FLAGGED`` flagged ones.
    """
    release_dir, data = Path(release_dir), Path(data)
    predictor = SensorPredictor(release_dir)  # checks every hash before anything is changed
    loaded = predictor.get(model)
    far = loaded.target_far if target_far is None else float(target_far)
    if not 0.0 < far < 1.0:
        raise RecalibrationError(f"the target false-alarm rate must be in (0, 1), got {far}")
    table = read_sensor_csv(data)
    X = table.values if table.labels is None else table.values[table.labels == 0]
    needed = math.ceil(MIN_FLAGGED / far)
    if len(X) < needed:
        raise RecalibrationError(f"{data.name} has {len(X)} passing wafers; at least {needed} are "
                                 f"needed to set a {far:.0%} false-alarm threshold")
    progress(f"scoring {len(X)} passing wafers from {data.name} with {loaded.name}")
    scores = loaded.detector.score(X)
    old = loaded.manifest["threshold"]
    record = {"at": now(), "model": loaded.name, "target_false_alarm_rate": far,
              "data": {"name": data.name, "sha256": sha256(data), "rows": int(len(X)),
                       "rows_left_out_as_failing": int(len(table) - len(X))},
              "previous": {k: old.get(k) for k in ("value", "target_false_alarm_rate",
                                                   "measured_on", "recalibrated")}}
    value = threshold_at_false_alarm_rate(scores, far)
    section = {**old, "value": value, "target_false_alarm_rate": far,
               "measured_false_alarm_rate": false_alarm_rate(scores, value),
               "source": "scores of recent passing wafers",
               "measured_on": {"scores": f"scores of the shipped {loaded.name} model",
                               "passing_wafers": int(len(X)), "data": data.name},
               "recalibrated": record, "normal_score_quantiles": score_quantiles(scores)}
    section["note"] = threshold_note(section)
    rewrite_threshold(release_dir, loaded.name, section, record)
    progress(f"{loaded.name}: threshold {old['value']:.4g} -> {section['value']:.4g}")
    return {k: v for k, v in section.items() if k != "normal_score_quantiles"}


def rewrite_threshold(release_dir: Path, model: str, section: dict, record: dict) -> None:
    """Copy the release, replace one bundle's threshold, log the change, re-hash, swap in."""
    with atomic_directory(release_dir) as tmp:
        shutil.copytree(release_dir, tmp, dirs_exist_ok=True)
        bundle = read_manifest(tmp / model)
        write_manifest(tmp / model, bundle | {"threshold": section})
        release = read_manifest(tmp)
        release["recalibrations"] = [*release.get("recalibrations", []),
                                     {k: record[k] for k in ("at", "model", "data",
                                                             "target_false_alarm_rate")}]
        release["files"] = file_entries(tmp, {n: e["role"] for n, e in release["files"].items()})
        write_manifest(tmp, release)
        logger.info("recalibrated %s: %s", model, json.dumps(record["data"]))
