"""``POST /api/v1/inspection/predict``: part photos in; JSON out, or the CSV.

Each image gets ``anomaly_score``, ``threshold``, ``is_anomaly`` (and ``verdict``); with
``heatmap=true`` also ``heatmap_png_base64``, the anomaly map as a colour PNG at the model
size. Files that cannot be read are left out and listed in ``rejected`` (``[{"file",
"reason"}]``, also kept as the run's warnings); only an upload where none can be read is
refused. Every run is recorded (failed ones with their reason) with the input's sha256 and the
model version; its results are stored so ``results_url`` and History can download them
again, at another threshold too.
"""
from __future__ import annotations

import gzip

from flask import Blueprint, current_app, request, url_for

from pipelines.inspection.ingest import labelled_defective
from webapp import db
from webapp.downloads import csv_bytes, csv_download, json_stream, wants_csv
from webapp.limits import heavy_slot
from webapp.modules.inspection.parsing import inspection_request
from webapp.modules.inspection.service import results_frame, score_images
from webapp.predictors import get_predictor
from webapp.runs import recording_failures

bp = Blueprint("inspection_api", __name__, url_prefix="/api/v1/inspection")

PAGE_IMAGES = 20


@bp.post("/predict")
def predict():
    """Score part photos. Files in; JSON out, or CSV with ``?format=csv``."""
    predictor = get_predictor("inspection")
    with recording_failures("inspection"), heavy_slot():
        req = inspection_request(request)
        run = score_images(predictor, req)
    data = csv_bytes(results_frame(run), float_decimals=None)  # re-decided later: exact
    converted = [r["name"] for r in run.records if r["converted"]]
    warnings = [f"{len(converted)} image(s) converted or resized to the model's input: "
                f"{', '.join(converted[:5])}{' ...' if len(converted) > 5 else ''}"] \
        if converted else []
    run_id = db.record_run(
        "inspection", run.model, run.model_version, req.source, len(run.records),
        run.n_anomalies, run.threshold, default_threshold=run.default_threshold,
        input_sha256=req.sha256, warnings=warnings + req.rejected.warnings(),
        results=("anomaly_score", gzip.compress(data, compresslevel=1)),
        keep=current_app.config["RESULTS_KEEP"], labelled_faulty=labelled_defective(req.names))
    if wants_csv(request):
        return csv_download(data, "inspection_predictions.csv")
    head = dict(run_id=run_id, results_url=url_for("runs.results", run_id=run_id),
                model=run.model, model_version=run.model_version, threshold=run.threshold,
                default_threshold=run.default_threshold,
                false_alarm_rate=round(predictor.get(run.model).false_alarm_rate(run.threshold), 4),
                n_images=len(run.records),
                n_anomalies=run.n_anomalies, n_converted=len(converted), read=req.kinds,
                rejected=req.rejected.to_list())

    def pages():
        for start in range(0, len(run.records), PAGE_IMAGES):
            yield [{"index": k + 1} | run.records[k]
                   for k in range(start, min(start + PAGE_IMAGES, len(run.records)))]

    return json_stream(head, "predictions", pages())
