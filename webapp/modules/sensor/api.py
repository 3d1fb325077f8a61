"""``POST /api/v1/sensor/predict``: JSON or a CSV/.xlsx upload in; JSON out, or the results CSV.

The platform's prediction service (:mod:`webapp.prediction`) records every run, failed ones
with their reason, and keeps its results so that ``results_url`` (and History) can download
them again, at another threshold too; this module parses and scores.
"""
from __future__ import annotations

from flask import Blueprint

from pipelines.sensor.predict import results_to_records
from webapp.modules.sensor.parsing import (SensorPredictBody, SensorPredictForm,
                                           sensor_request)
from webapp.modules.sensor.service import ScoredRun, run_drift, score_request
from webapp.prediction import Prediction, prediction_view

bp = Blueprint("sensor_api", __name__, url_prefix="/api/v1/sensor")

PAGE_ROWS = 1000


def _pages(run: ScoredRun):
    results = run.results
    extra = run.extra_columns
    for start in range(0, len(results), PAGE_ROWS):
        part = results.iloc[start:start + PAGE_ROWS]
        records = results_to_records(part)
        labels = part["label"].tolist() if "label" in part else None
        in_sample = part["in_sample"].tolist()
        extras = part[[c for c in part.columns if c in extra]].to_dict("records") if extra else None
        for k, record in enumerate(records):
            record["in_sample"] = bool(in_sample[k])
            if labels is not None:
                record["label"] = int(labels[k])
            if extras is not None:
                record["extra"] = {c: (None if v is None or v != v else str(v))
                                   for c, v in extras[k].items()}
        yield records


def serve(predictor, request) -> Prediction:
    """Score wafers. JSON or a file upload in; JSON out, or CSV with ``?format=csv``."""
    req = sensor_request(request)
    run = score_request(predictor, req)
    decider = predictor.get(run.model)
    info = next(d for d in predictor.describe() if d["name"] == run.model)
    head = dict(
        false_alarm_rate=round(decider.false_alarm_rate(run.threshold), 4),
        id_column=req.id_name, detected=req.detected.to_dict(),
        warnings=run.warnings, n_rows=len(run.results),
        imputed_cells=run.n_missing, drift=run.drift,
        score_meaning=info.get("score_meaning"), threshold_note=info.get("threshold_note"),
        labels={"column": req.label_column, "positive": "fail"} if run.has_labels else None)
    return Prediction(
        model=run.model, model_version=run.model_version, threshold=run.threshold,
        default_threshold=run.default_threshold, n_items=len(run.results),
        n_flagged=run.n_flagged, csv=run.csv, score_column=run.score_column, source=req.source,
        pages=_pages(run), head=head, input_sha256=req.sha256, warnings=run.warnings,
        edited_cells=req.edited_cells, removed_rows=req.removed_rows,
        labelled_faulty=int(run.results["label"].sum()) if run.has_labels else None,
        drift=run_drift(run.drift))


bp.add_url_rule("/predict", methods=["POST"], view_func=prediction_view(
    "sensor", serve, "sensor_predictions.csv", body=SensorPredictBody, form=SensorPredictForm))
