"""``POST /api/v1/wafermap/predict``: JSON grids or uploaded files in; JSON out, or the CSV.

Files that cannot be read are left out and listed in ``rejected`` (``[{"file", "reason"}]``,
also kept as the run's warnings); only an upload where none can be read is refused. Every run
is recorded by the platform's prediction service (:mod:`webapp.prediction`), failed ones with
their reason, with the input's sha256 and the model version; its results are stored so
``results_url`` and History can download them again, at another "needs review" level too.
"""
from __future__ import annotations

from flask import Blueprint

from pipelines.wafermap.schema import NO_PATTERN
from webapp.annotation.capture import after_run
from webapp.annotation.kinds import wafermap_items
from webapp.downloads import csv_bytes
from webapp.modules.wafermap.parsing import (WafermapPredictBody, WafermapPredictForm,
                                             WafermapRequest, wafermap_request)
from webapp.modules.wafermap.service import (ScoredMaps, label_report, pack_grid, results_frame,
                                             score_maps)
from webapp.prediction import CsvBytes, Prediction, prediction_view

bp = Blueprint("wafermap_api", __name__, url_prefix="/api/v1/wafermap")

PAGE_MAPS = 200


def _pages(run: ScoredMaps, req: WafermapRequest):
    for start in range(0, len(run.records), PAGE_MAPS):
        page = []
        for k in range(start, min(start + PAGE_MAPS, len(run.records))):
            record = {"index": k + 1, "name": req.names[k]} | run.records[k]
            if req.labels is not None:
                record["label"] = req.labels[k] or None
            if req.include_maps:
                record["map"] = pack_grid(req.maps[k])
            page.append(record)
        yield page


def serve(predictor, request) -> Prediction:
    """Classify wafer maps. JSON or files in; JSON out, or CSV with ``?format=csv``."""
    req = wafermap_request(request)
    run = score_maps(predictor, req)
    data = csv_bytes(results_frame(run, req.names, req.labels),
                     float_decimals=None)  # re-decided later: exact
    counts = {c: 0 for c in run.classes}
    for record in run.records:
        counts[record["class"]] += 1
    head = dict(review_level=run.review_level, default_review_level=run.default_review_level,
                classes=run.classes, n_maps=len(run.records), n_review=run.n_review,
                class_counts=counts, read=req.kinds, rejected=req.rejected.to_list(),
                labels=label_report(run, req.labels))
    return Prediction(
        model=run.model, model_version=run.model_version, threshold=run.review_level,
        default_threshold=run.default_review_level, n_items=len(run.records),
        n_flagged=run.n_review, csv=CsvBytes(data), score_column="confidence", source=req.source,
        pages=_pages(run, req), head=head, input_sha256=req.sha256,
        warnings=req.rejected.warnings(),
        labelled_faulty=None if req.labels is None else
        sum(1 for label in req.labels if label and label != NO_PATTERN),
        drift=predictor.drift([r["class"] for r in run.records], req.maps),
        after_record=after_run("wafermap", lambda limit: wafermap_items(
            req.maps, req.names, run.records, run.classes, run.review_level, req.labels,
            getattr(predictor, "release_version", None), run.model_version, limit)))


bp.add_url_rule("/predict", methods=["POST"], view_func=prediction_view(
    "wafermap", serve, "wafermap_predictions.csv", body=WafermapPredictBody,
    form=WafermapPredictForm))
