"""The sensor page: bring a CSV, review and edit it, predict, download."""
from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for

from pipelines.sensor.samples import sensor_sample, sensor_template
from pipelines.sensor.schema import LABEL_COLUMNS
from webapp.downloads import csv_response
from webapp.modules import get_module
from webapp.modules.sensor.parsing import read_sensor_upload
from webapp.pagekit import page_config, render_module_page
from webapp.predictors import get_predictor
from webapp.uploads import uploaded_file

bp = Blueprint("sensor", __name__, url_prefix="/sensor")


@bp.get("/")
def page():
    """The sensor page."""
    spec = get_module("sensor")
    predictor = get_predictor("sensor")
    config = page_config(spec, predictor, label_columns=list(LABEL_COLUMNS),
                         check_url=url_for("sensor.check"), sample_url=url_for("sensor.sample"))
    return render_module_page(spec, "sensor.html", config, item_label="Wafers")


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
    """A sample file generated from training statistics (``sample_model.json`` of the release)."""
    rows = max(1, min(request.args.get("rows", 200, type=int), 10_000))
    frame = sensor_sample(get_predictor("sensor").sample_model, n_rows=rows)
    return csv_response(frame, "fablens_sensor_sample.csv", float_decimals=None)


@bp.get("/template.csv")
def template():
    """An empty CSV with the expected header."""
    return csv_response(sensor_template(), "fablens_sensor_template.csv", float_decimals=None)
