"""The sensor page: bring a CSV, review and edit it, predict, download."""
from __future__ import annotations

import pandas as pd
from flask import Blueprint, jsonify, request, url_for

from pipelines.sensor.ingest.table import chunk_frame
from pipelines.sensor.samples import sensor_sample, sensor_template
from pipelines.sensor.schema import LABEL_COLUMNS
from webapp.downloads import csv_bytes, csv_response
from webapp.limits import heavy_slot
from webapp.modules import get_module
from webapp.modules.sensor.parsing import file_warnings, open_sensor_upload
from webapp.pagekit import page_config, render_module_page
from webapp.predictors import get_predictor

bp = Blueprint("sensor", __name__, url_prefix="/sensor")


@bp.get("/")
def page():
    """The sensor page."""
    spec = get_module("sensor")
    predictor = get_predictor("sensor")
    config = page_config(spec, predictor, label_columns=list(LABEL_COLUMNS),
                         check_url=url_for("sensor.check"), sample_url=url_for("sensor.sample"),
                         models_url=url_for("pages.models"), profile_url=url_for("sensor.profile"))
    return render_module_page(spec, "sensor.html", config, item_label="Wafers")


@bp.post("/check")
def check():
    """Validate an uploaded file without predicting: a summary, or a 400 listing the problems.

    A file that is not plain comma/point CSV (semicolons, tabs, decimal commas, .xlsx:
    ``detected.needs_normalising``) comes back as ``csv``, normalised, for the page's editable
    preview; otherwise ``csv`` is null and the page keeps the user's own text.
    """
    with heavy_slot():
        return _check()


def _check():
    req = open_sensor_upload(request)
    rows, missing, labelled, parts, ids = 0, 0, False, [], []
    normalise = req.detected.needs_normalising
    for table in req.chunks:
        rows += len(table)
        missing += table.n_missing
        labelled = table.labels is not None
        ids.extend(table.ids)
        if normalise:
            parts.append(chunk_frame(table, req.label_column))
    text = csv_bytes(pd.concat(parts, ignore_index=True), float_decimals=None,
                     formula_guard=False).decode() if parts else None
    return jsonify(file=req.source, n_rows=rows, n_missing=missing, id_column=req.id_name,
                   layout=req.detected.layout, has_labels=labelled, problems=[],
                   detected=req.detected.to_dict(),
                   warnings=req.warnings + file_warnings(req.detected, pd.Series(ids)), csv=text)


@bp.get("/profile.json")
def profile():
    """Per sensor: the training data's 1st and 99th percentile, median and missing rate."""
    response = jsonify(get_predictor("sensor").training_profile())
    response.cache_control.max_age = 3600
    return response


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
