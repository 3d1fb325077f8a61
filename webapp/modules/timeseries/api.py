"""The time-series API.

``POST /api/v1/timeseries/predict``: an uploaded history -> per-cycle scores, flags and RUL
(JSON, or the CSV with ``?format=csv``); recorded as a run (History) with its results, and
each machine's unbroken stretch of flagged cycles stored as one event (``n_events`` found,
``n_events_new`` stored for the first time, ``n_events_extended`` carried further: scoring the
same history again stores nothing new). ``POST /api/v1/timeseries/detect``: one window ->
``{anomaly_score, is_anomaly, threshold, rul, model_version, processing_time_ms}``;
``/detect/batch``: ``{"windows": [...]}``. Flagged detect windows are stored as events by the
same function (``service.flagged_events``); a window sent with its ``cycles`` continues its
machine's stretch.
"""
from __future__ import annotations

import time

from flask import Blueprint, jsonify, request, url_for

from webapp.downloads import csv_bytes
from webapp.events import record_events
from webapp.modules.timeseries.parsing import (DetectBatchBody, DetectBody,
                                               TimeseriesPredictForm, detect_request,
                                               file_request)
from webapp.openapi import COMMON_ERRORS, documented
from webapp.modules.timeseries.service import (detect, detect_events, event_rows,
                                               in_sample_warning, machine_summaries,
                                               results_frame, score_file)
from webapp.prediction import CsvBytes, Prediction, prediction_view
from webapp.predictors import get_predictor

bp = Blueprint("timeseries_api", __name__, url_prefix="/api/v1/timeseries")

PAGE_ROWS = 1000


def _pages(series, scored):
    for start in range(0, len(series), PAGE_ROWS):
        page = []
        for i in range(start, min(start + PAGE_ROWS, len(series))):
            page.append({"machine_id": str(series.machines[i]), "cycle": float(series.cycles[i]),
                         "timestamp": None if series.timestamps is None
                         else str(series.timestamps[i]),
                         "score": round(float(scored.scores[i]), 6),
                         "is_anomaly": bool(scored.flagged[i]),
                         "rul": round(float(scored.rul[i]), 1),
                         "padded_window": bool(scored.padded[i]),
                         "top_sensors": scored.top[i] if scored.top else []})
        yield page


def serve(predictor, request) -> Prediction:
    """Score every cycle of an uploaded history. JSON out, or CSV with ``?format=csv``."""
    started = time.perf_counter()
    req = file_request(request)
    scored = score_file(predictor, req.series, req.model, req.threshold)
    model = predictor.get(scored.model)
    data = csv_bytes(results_frame(req.series, scored), float_decimals=None)
    in_sample = predictor.in_sample_machines(req.series) or []
    warnings = [w for w in [in_sample_warning(predictor, in_sample)] if w]

    def store_events(run_id: int) -> dict:
        events = record_events("timeseries", event_rows(req.series, scored), run_id=run_id)
        return dict(n_events=events["events"], n_events_new=events["new"],
                    n_events_extended=events["extended"])

    head = dict(events_url=url_for("events.page", model=scored.model),
                false_alarm_rate=model.false_alarm_rate(scored.threshold),
                layout=req.series.layout, source=req.series.source,
                machine_column=req.series.machine_column, time_column=req.series.time_column,
                sensors=predictor.sensors, n_rows=len(req.series),
                n_padded=int(scored.padded.sum()),
                window=predictor.window, warnings=warnings, n_in_sample=len(in_sample),
                machines=machine_summaries(req.series, scored, req.values, predictor.sensors,
                                           in_sample),
                processing_time_ms=round(1000 * (time.perf_counter() - started), 1))
    return Prediction(
        model=scored.model, model_version=scored.model_version, threshold=scored.threshold,
        default_threshold=model.threshold, n_items=len(req.series),
        n_flagged=int(scored.flagged.sum()), csv=CsvBytes(data), score_column="score",
        source=req.series.source, pages=_pages(req.series, scored), head=head,
        input_sha256=req.sha256, warnings=warnings,
        # training engines ran to failure: a run holding them holds faults, so the Models
        # page's false-alarm check leaves it out
        labelled_faulty=len(in_sample) or None, after_record=store_events,
        drift=predictor.drift(req.series))


bp.add_url_rule("/predict", methods=["POST"], view_func=prediction_view(
    "timeseries", serve, "timeseries_scores.csv", form=TimeseriesPredictForm))


def _detect(batch: bool):
    predictor = get_predictor("timeseries")
    started = time.perf_counter()
    items, model, threshold = detect_request(request, len(predictor.input_sensors),
                                             predictor.window, batch)
    found, scored = detect(predictor, items, model, threshold)
    events = record_events("timeseries", detect_events(items, scored))
    elapsed = round(1000 * (time.perf_counter() - started), 2)
    results = [{"machine_id": d.machine_id, "timestamp": d.timestamp, "cycle": d.cycle,
                "anomaly_score": round(d.score, 6), "is_anomaly": d.flagged,
                "threshold": scored.threshold, "rul": round(d.rul, 1),
                "top_sensors": d.top, "model": scored.model,
                "model_version": scored.model_version} for d in found]
    if not batch:
        return jsonify(results[0] | {"processing_time_ms": elapsed})
    return jsonify(model=scored.model, model_version=scored.model_version,
                   threshold=scored.threshold, n_windows=len(results),
                   n_anomalies=sum(r["is_anomaly"] for r in results),
                   n_events=events["events"], n_events_new=events["new"],
                   n_events_extended=events["extended"], results=results,
                   processing_time_ms=elapsed)


@bp.post("/detect")
@documented(body=DetectBody, errors=(*COMMON_ERRORS, 503), tags=("timeseries",))
def detect_one():
    """One window: anomaly score, flag, threshold, RUL, model version, time taken."""
    return _detect(batch=False)


@bp.post("/detect/batch")
@documented(body=DetectBatchBody, errors=(*COMMON_ERRORS, 413, 503), tags=("timeseries",))
def detect_batch():
    """Several windows: ``{"windows": [{machine_id, window, timestamp}, ...]}``."""
    return _detect(batch=True)
