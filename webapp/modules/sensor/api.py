"""``POST /api/v1/sensor/predict``: JSON or a CSV/.xlsx upload in; JSON out, or the results CSV.

Every run is recorded, failed ones with their reason; the results of a run are kept so that
``results_url`` (and History) can download them again, at another threshold too.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request, url_for

from pipelines.sensor.predict import results_to_records
from webapp import db
from webapp.downloads import csv_download, json_stream, wants_csv
from webapp.limits import heavy_slot
from webapp.modules.sensor.parsing import sensor_request
from webapp.modules.sensor.service import ScoredRun, score_request
from webapp.predictors import get_predictor
from webapp.runs import recording_failures

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


@bp.post("/predict")
def predict():
    """Score wafers. JSON or a file upload in; JSON out, or CSV with ``?format=csv``."""
    predictor = get_predictor("sensor")
    with recording_failures("sensor"), heavy_slot():
        req = sensor_request(request)
        run = score_request(predictor, req)
    run_id = db.record_run(
        "sensor", run.model, run.model_version, req.source, len(run.results), run.n_flagged,
        run.threshold, default_threshold=run.default_threshold, input_sha256=req.sha256,
        edited_cells=req.edited_cells, removed_rows=req.removed_rows, warnings=run.warnings,
        results=(run.score_column, run.csv.gzipped()),
        keep=current_app.config["RESULTS_KEEP"],
        labelled_faulty=int(run.results["label"].sum()) if run.has_labels else None)
    if wants_csv(request):
        return csv_download(run.csv.data(), "sensor_predictions.csv")
    decider = predictor.get(run.model)
    info = next(d for d in predictor.describe() if d["name"] == run.model)
    head = dict(
        run_id=run_id, results_url=url_for("runs.results", run_id=run_id),
        model=run.model, model_version=run.model_version, threshold=run.threshold,
        default_threshold=run.default_threshold,
        false_alarm_rate=round(decider.false_alarm_rate(run.threshold), 4),
        id_column=req.id_name, detected=req.detected.to_dict(),
        warnings=run.warnings, n_rows=len(run.results), n_flagged=run.n_flagged,
        imputed_cells=run.n_missing, drift=run.drift,
        score_meaning=info.get("score_meaning"), threshold_note=info.get("threshold_note"),
        labels={"column": req.label_column, "positive": "fail"} if run.has_labels else None)
    return json_stream(head, "predictions", _pages(run))
