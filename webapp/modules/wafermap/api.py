"""``POST /api/v1/wafermap/predict``: JSON grids or uploaded files in; JSON out, or the CSV.

Files that cannot be read are left out and listed in ``rejected`` (``[{"file", "reason"}]``,
also kept as the run's warnings); only an upload where none can be read is refused. Every run
is recorded (failed ones with their reason) with the input's sha256 and the model version;
its results are stored so ``results_url`` and History can download them again, at another
"needs review" level too.
"""
from __future__ import annotations

import gzip

from flask import Blueprint, current_app, request, url_for

from pipelines.wafermap.schema import NO_PATTERN
from webapp import db
from webapp.downloads import csv_bytes, csv_download, json_stream, wants_csv
from webapp.limits import heavy_slot
from webapp.modules.wafermap.parsing import WafermapRequest, wafermap_request
from webapp.modules.wafermap.service import (ScoredMaps, label_report, pack_grid, results_frame,
                                             score_maps)
from webapp.predictors import get_predictor
from webapp.runs import recording_failures

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


@bp.post("/predict")
def predict():
    """Classify wafer maps. JSON or files in; JSON out, or CSV with ``?format=csv``."""
    predictor = get_predictor("wafermap")
    with recording_failures("wafermap"), heavy_slot():
        req = wafermap_request(request)
        run = score_maps(predictor, req)
    data = csv_bytes(results_frame(run, req.names, req.labels),
                     float_decimals=None)  # re-decided later: exact
    run_id = db.record_run(
        "wafermap", run.model, run.model_version, req.source, len(run.records), run.n_review,
        run.review_level, default_threshold=run.default_review_level, input_sha256=req.sha256,
        warnings=req.rejected.warnings(),
        results=("confidence", gzip.compress(data, compresslevel=1)),
        keep=current_app.config["RESULTS_KEEP"],
        labelled_faulty=None if req.labels is None else
        sum(1 for label in req.labels if label and label != NO_PATTERN))
    if wants_csv(request):
        return csv_download(data, "wafermap_predictions.csv")
    counts = {c: 0 for c in run.classes}
    for record in run.records:
        counts[record["class"]] += 1
    head = dict(run_id=run_id, results_url=url_for("runs.results", run_id=run_id),
                model=run.model, model_version=run.model_version,
                review_level=run.review_level, default_review_level=run.default_review_level,
                classes=run.classes, n_maps=len(run.records), n_review=run.n_review,
                class_counts=counts, read=req.kinds, rejected=req.rejected.to_list(),
                labels=label_report(run, req.labels))
    return json_stream(head, "predictions", _pages(run, req))
