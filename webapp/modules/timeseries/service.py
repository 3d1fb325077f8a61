"""Scoring a history or windows with the time-series release, and what each answer holds."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.core.problems import plural
from pipelines.timeseries.episodes import flag_episodes
from pipelines.timeseries.ingest import Series
from pipelines.timeseries.predict import Scored, TimeseriesPredictor
from pipelines.timeseries.results import results_frame  # noqa: F401 (the API's results CSV)
from webapp.params import check_threshold_range

SCORE_DECIMALS = 6


def _model(predictor: TimeseriesPredictor, name: str | None, threshold: float | None):
    model = predictor.get(name)  # an unknown model: a 400 (webapp.errors)
    check_threshold_range(threshold, model.score_range, model.name)
    return model


def score_file(predictor: TimeseriesPredictor, series: Series, model: str | None,
               threshold: float | None) -> Scored:
    """Per-row results of an uploaded history (each row: the window ending there)."""
    _model(predictor, model, threshold)
    return predictor.score_series(series, model, threshold)




def flagged_events(machines, cycles, timestamps, scored: Scored, follows=None,
                   previous=None) -> list[dict]:
    """The events of scored rows: one per machine per unbroken stretch of flagged rows
    (``flag_episodes``), with its first and last cycle and time, the peak score and its cycle,
    the RUL at the last cycle, the model and version. ``previous`` (per row, or None) is the
    cycle before a detect window's, for continuing a stored stretch."""
    def cycle(i):
        return None if cycles[i] is None else float(cycles[i])

    def when(i):
        return None if timestamps is None or timestamps[i] is None else str(timestamps[i])

    out = []
    for episode in flag_episodes(machines, scored.flagged, follows):
        first, last = int(episode.rows[0]), int(episode.rows[-1])
        peak = episode.peak(scored.scores)
        out.append({"machine_id": episode.machine, "first_cycle": cycle(first),
                    "last_cycle": cycle(last), "peak_cycle": cycle(peak),
                    "n_cycles": len(episode.rows), "first_timestamp": when(first),
                    "last_timestamp": when(last), "score": float(scored.scores[peak]),
                    "threshold": float(scored.threshold), "rul": float(scored.rul[last]),
                    "model": scored.model, "model_version": scored.model_version,
                    "previous_cycle": None if previous is None or previous[first] is None
                    else float(previous[first])})
    return out


def event_rows(series: Series, scored: Scored) -> list[dict]:
    """The events of a scored history file (rows of a machine follow one another)."""
    return flagged_events(series.machines, series.cycles, series.timestamps, scored)


def detect_events(items, scored: Scored) -> list[dict]:
    """The events of scored detect windows. A window follows the machine's window before it
    in the request only when its ``cycles`` say so (its previous cycle is that window's
    cycle); the first one may continue a stored stretch the same way."""
    previous = [item.previous_cycle for item in items]
    follows, last = [], {}
    for item, prev in zip(items, previous):
        before = last.get(item.machine_id)
        follows.append(prev is not None and before is not None and before == prev)
        last[item.machine_id] = item.cycle
    return flagged_events([item.machine_id for item in items], [item.cycle for item in items],
                          [item.timestamp for item in items], scored, follows, previous)


def in_sample_warning(predictor: TimeseriesPredictor, in_sample: list[str]) -> str | None:
    """The warning for machines that are engines of the training file, or None."""
    if not in_sample:
        return None
    data = predictor.release.get("training_data", {}).get("name", "the training file")
    shown = ", ".join(in_sample[:5]) + (" ..." if len(in_sample) > 5 else "")
    are = "is an engine" if len(in_sample) == 1 else "are engines"
    return (f"{plural(len(in_sample), 'machine')} ({shown}) {are} of {data}, which the models "
            f"were trained and their thresholds set on (marked in-sample): their scores and RUL "
            f"look better than the models would do on new engines.")


def machine_summaries(series: Series, scored: Scored, values: bool = False,
                      sensors: list[str] | None = None,
                      in_sample: list[str] | None = None) -> list[dict]:
    """Per machine: cycles, flagged count, first flagged cycle, last RUL, whether it is a
    training engine (and the values)."""
    out = []
    seen = set(in_sample or ())
    index = {s: j for j, s in enumerate(series.sensors)}
    for machine, rows in series.groups():
        flagged = scored.flagged[rows]
        first = np.flatnonzero(flagged)
        record = {"machine_id": machine, "n_cycles": int(len(rows)),
                  "n_flagged": int(flagged.sum()),
                  "first_flag_cycle": float(series.cycles[rows[first[0]]]) if first.size
                  else None,
                  "max_score": _finite(scored.scores[rows].max()),
                  "last_rul": round(float(scored.rul[rows[-1]]), 1),
                  "last_cycle": float(series.cycles[rows[-1]]), "in_sample": machine in seen}
        if values:
            record["cycles"] = series.cycles[rows].tolist()
            if series.timestamps is not None:
                record["timestamps"] = [str(t) for t in series.timestamps[rows]]
            record["scores"] = [_finite(v) for v in np.round(scored.scores[rows], SCORE_DECIMALS)]
            record["rul"] = np.round(scored.rul[rows], 1).tolist()
            record["flagged"] = flagged.tolist()
            record["values"] = {s: np.round(series.values[rows, index[s]], 5).tolist()
                                for s in (sensors or series.sensors) if s in index}
        out.append(record)
    return out


def _finite(value: float) -> float | None:
    value = float(value)
    return round(value, SCORE_DECIMALS) if math.isfinite(value) else None


@dataclass
class Detection:
    """One scored window of the detect API."""

    machine_id: str
    timestamp: str | None
    cycle: float | None
    score: float
    flagged: bool
    rul: float
    top: list[str]


def detect(predictor: TimeseriesPredictor, items, model: str | None, threshold: float | None
           ) -> tuple[list[Detection], Scored]:
    """Score detect windows (their last ``window`` cycles; every cycle sent is history)."""
    _model(predictor, model, threshold)
    X, history = predictor.window_input([item.window for item in items],
                                        [item.path for item in items])
    scored = predictor.score_windows(X, model, threshold, history=history)
    return [Detection(item.machine_id, item.timestamp, item.cycle, float(scored.scores[k]),
                      bool(scored.flagged[k]), float(scored.rul[k]),
                      scored.top[k] if scored.top else [])
            for k, item in enumerate(items)], scored
