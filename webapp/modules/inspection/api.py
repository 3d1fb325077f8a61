"""``POST /api/v1/inspection/predict``: part photos in; JSON out, or the CSV.

Each image gets ``anomaly_score``, ``threshold``, ``is_anomaly`` (and ``verdict``); with
``heatmap=true`` also ``heatmap_png_base64``, the anomaly map as a colour PNG at the model
size. Files that cannot be read are left out and listed in ``rejected`` (``[{"file",
"reason"}]``, also kept as the run's warnings); only an upload where none can be read is
refused. The platform's prediction service (:mod:`webapp.prediction`) records every run
(failed ones with their reason) with the input's sha256 and the model version, and stores its
results so ``results_url`` and History can download them again, at another threshold too.
"""
from __future__ import annotations

from flask import Blueprint

from pipelines.inspection.ingest import folder_labels, labelled_defective
from webapp.annotation.capture import after_run
from webapp.annotation.kinds import inspection_items
from webapp.downloads import csv_bytes
from webapp.modules.inspection.parsing import InspectionPredictForm, inspection_request
from webapp.modules.inspection.service import (converted_warning, results_frame,
                                                score_images)
from webapp.prediction import CsvBytes, Prediction, prediction_view

bp = Blueprint("inspection_api", __name__, url_prefix="/api/v1/inspection")

PAGE_IMAGES = 20


def serve(predictor, request) -> Prediction:
    """Score part photos. Files in; JSON out, or CSV with ``?format=csv``."""
    req = inspection_request(request)
    run = score_images(predictor, req)
    data = csv_bytes(results_frame(run), float_decimals=None)  # re-decided later: exact
    converted = [r["name"] for r in run.records if r["converted"]]
    warnings = converted_warning(len(converted), converted)
    head = dict(false_alarm_rate=round(predictor.get(run.model).false_alarm_rate(run.threshold), 4),
                n_images=len(run.records), n_anomalies=run.n_anomalies,
                n_converted=len(converted), read=req.kinds, rejected=req.rejected.to_list())

    def pages():
        for start in range(0, len(run.records), PAGE_IMAGES):
            yield [{"index": k + 1} | run.records[k]
                   for k in range(start, min(start + PAGE_IMAGES, len(run.records)))]

    return Prediction(
        model=run.model, model_version=run.model_version, threshold=run.threshold,
        default_threshold=run.default_threshold, n_items=len(run.records),
        n_flagged=run.n_anomalies, csv=CsvBytes(data), score_column="anomaly_score",
        source=req.source, pages=pages(), head=head, input_sha256=req.sha256,
        warnings=warnings + req.rejected.warnings(),
        labelled_faulty=labelled_defective(req.names), drift=predictor.drift(req.images),
        after_record=after_run("inspection", lambda limit: inspection_items(
            [im.pixels for im in req.images], [r["name"] for r in run.records], run.records,
            run.threshold, predictor.get(run.model).manifest.get("threshold", {}).get(
                "normal_score_quantiles"), folder_labels(req.names),
            getattr(predictor, "release_version", None), run.model_version, limit)))


bp.add_url_rule("/predict", methods=["POST"], view_func=prediction_view(
    "inspection", serve, "inspection_predictions.csv", form=InspectionPredictForm))
