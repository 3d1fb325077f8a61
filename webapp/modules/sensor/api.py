"""``POST /api/v1/sensor/predict``: JSON or a CSV upload in; JSON out, or the results CSV."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from pipelines.core.detectors import InvalidInputError, UnknownDetectorError
from pipelines.sensor.predict import results_to_records
from webapp import db
from webapp.downloads import csv_response, wants_csv
from webapp.errors import InputError
from webapp.modules.sensor.parsing import sensor_request
from webapp.predictors import get_predictor

bp = Blueprint("sensor_api", __name__, url_prefix="/api/v1/sensor")


@bp.post("/predict")
def predict():
    """Score wafers. JSON or CSV upload in; JSON out, or CSV with ``?format=csv``."""
    table, threshold, model, source = sensor_request(request)
    predictor = get_predictor("sensor")
    try:
        results = predictor.predict(table, threshold=threshold, model=model)
    except (UnknownDetectorError, InvalidInputError) as exc:
        raise InputError(str(exc)) from None
    meta = results.attrs
    flagged = int(results["is_fault"].sum())
    db.record_run("sensor", meta["model"], meta["model_version"], source, len(results), flagged,
                  meta["threshold"])
    if wants_csv(request):
        results.insert(results.columns.get_loc("is_fault") + 1, "threshold", meta["threshold"])
        results.insert(results.columns.get_loc("threshold") + 1, "model", meta["model_version"])
        ranges = [c for c in results if c.endswith(("_low", "_high"))]  # kept to the JSON
        return csv_response(results.drop(columns=ranges), "sensor_predictions.csv")
    decider = predictor.get(meta["model"])
    return jsonify(
        model=meta["model"], model_version=meta["model_version"], threshold=meta["threshold"],
        default_threshold=decider.threshold,
        false_alarm_rate=round(decider.false_alarm_rate(meta["threshold"]), 4),
        id_column=table.id_column, n_rows=len(results), n_flagged=flagged,
        imputed_cells=int(results["imputed_cells"].sum()), predictions=results_to_records(results))
