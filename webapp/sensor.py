"""The sensor module page: bring a CSV, review and edit it, predict, download."""
from __future__ import annotations

import io

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from werkzeug.exceptions import NotFound

from pipelines.samples import sensor_sample, sensor_template
from webapp.models import sensor_predictor
from webapp.uploads import read_sensor_upload, uploaded_file

bp = Blueprint("sensor", __name__, url_prefix="/sensor")


def _csv_response(frame, filename: str) -> Response:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={filename}"})


def page_models() -> list[dict]:
    """What the page needs about each model: threshold, its meaning, score quantiles."""
    predictor = sensor_predictor()
    out = []
    for name, model in predictor.models.items():
        threshold = model.manifest["threshold"]
        out.append({"name": name, "role": model.manifest.get("role"), "version": model.version,
                    "threshold": model.threshold,
                    "target_far": threshold["target_false_alarm_rate"],
                    "quantiles": threshold["normal_score_quantiles"],
                    "score": model.score_column,
                    "cv": model.manifest.get("metrics", {}).get("cv", {})})
    return out


@bp.get("/")
def page():
    """The sensor page."""
    predictor = sensor_predictor()
    return render_template(
        "sensor.html", models=page_models(), default_model=predictor.default_model,
        max_upload_mb=current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024),
        max_rows=current_app.config["MAX_ROWS"],
        api_url=url_for("api.sensor_predict", _external=True))


@bp.post("/check")
def check():
    """Validate an uploaded CSV without predicting: a summary, or a 400 listing the problems."""
    storage = uploaded_file(request)
    table = read_sensor_upload(storage.read(), storage.filename)
    return jsonify(file=storage.filename, n_rows=len(table), n_missing=table.n_missing,
                   id_column=table.id_column, layout=table.layout,
                   has_labels=table.labels is not None, problems=[])


@bp.get("/sample.csv")
def sample():
    """A sample file generated from training statistics (``sample_model.json``)."""
    model = sensor_predictor().sample_model
    if model is None:
        raise NotFound("no sample statistics in the artifacts; run 'python -m pipelines.train "
                       "sensor' to create them")
    rows = max(1, min(request.args.get("rows", 200, type=int), 10_000))
    return _csv_response(sensor_sample(model, n_rows=rows), "fablens_sensor_sample.csv")


@bp.get("/template.csv")
def template():
    """An empty CSV with the expected header."""
    return _csv_response(sensor_template(), "fablens_sensor_template.csv")
