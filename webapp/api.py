"""JSON API: ``/health``, ``/api/v1/models``, ``/api/v1/sensor/predict``."""
from __future__ import annotations

import io
import logging
import math
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request

from pipelines.artifacts import BundleError, read_manifest
from pipelines.detectors.base import UnknownDetectorError
from pipelines.ingest.sensor_csv import SensorTable, table_from_instances
from pipelines.predict import results_to_records
from pipelines.schema import SchemaError
from webapp import __version__, db
from webapp.errors import InputError
from webapp.models import sensor_predictor
from webapp.uploads import check_row_limit, read_sensor_upload, uploaded_file

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


@bp.get("/health")
def health():
    """Liveness: the process answers and the artifact folder is there (models load lazily)."""
    artifacts = Path(current_app.config["ARTIFACTS_DIR"])
    return jsonify(status="ok", version=__version__,
                   artifacts=sorted(p.parent.parent.name + "/" + p.parent.name
                                    for p in artifacts.glob("*/*/manifest.json")))


@bp.get("/api/v1/models")
def models():
    """Every bundle's metadata, threshold and metrics, read from its manifest."""
    out = []
    for path in sorted(Path(current_app.config["ARTIFACTS_DIR"]).glob("*/*/manifest.json")):
        try:
            manifest = read_manifest(path.parent)
        except BundleError as exc:
            logger.warning("skipping %s: %s", path, exc)
            continue
        threshold = dict(manifest.get("threshold", {}))
        threshold.pop("normal_score_quantiles", None)
        out.append({key: manifest.get(key) for key in (
            "module", "name", "model", "role", "version", "created", "params",
            "training_data", "preprocessing", "metrics", "libraries", "git_commit")}
            | {"threshold": threshold, "shipped": manifest.get("evaluation", {}).get("shipped")})
    return jsonify(models=out)


def parse_threshold(value) -> float | None:
    """A threshold from a request (number or numeric string), or None when absent."""
    if value is None or value == "":
        return None
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number, got '{value}'") from None
    if not math.isfinite(threshold):
        raise InputError(f"threshold must be a finite number, got '{value}'")
    return threshold


def sensor_request() -> tuple[SensorTable, float | None, str | None, str]:
    """Read a sensor predict request: a CSV upload or JSON instances; options from either."""
    if request.files:
        storage = uploaded_file(request)
        table = read_sensor_upload(storage.read(), storage.filename)
        options, source = request.form, storage.filename
    else:
        body = request.get_json(silent=True)
        if body is None:
            raise InputError("send JSON with 'instances', or a CSV file in the form field 'file'",
                             code=415 if request.data else 400)
        if isinstance(body, list):
            body = {"instances": body}
        if not isinstance(body, dict) or "instances" not in body:
            raise InputError("the JSON body needs 'instances': a list of rows")
        try:
            table = check_row_limit(table_from_instances(body["instances"], body.get("ids")),
                                    "instances")
        except SchemaError as exc:
            raise InputError(str(exc), [p.to_dict() for p in exc.problems]) from None
        options, source = body, "json"
    model = options.get("model") or request.args.get("model") or None
    threshold = parse_threshold(options.get("threshold", request.args.get("threshold")))
    return table, threshold, model, source


def results_csv(results) -> bytes:
    """Every result row as CSV bytes, built in memory (training ranges are left to the JSON)."""
    buffer = io.StringIO()
    table = results.drop(columns=[c for c in results if c.endswith(("_low", "_high"))])
    table.round(6).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@bp.post("/api/v1/sensor/predict")
def sensor_predict():
    """Score wafers. JSON or CSV upload in; JSON out, or CSV with ``?format=csv``."""
    table, threshold, model, source = sensor_request()
    predictor = sensor_predictor()
    try:
        results = predictor.predict(table, threshold=threshold, model=model)
    except UnknownDetectorError as exc:
        raise InputError(str(exc)) from None
    meta = results.attrs
    flagged = int(results["is_fault"].sum())
    db.record_run("sensor", meta["model"], meta["model_version"], source, len(results), flagged,
                  meta["threshold"])
    if request.args.get("format") == "csv" or request.accept_mimetypes.best == "text/csv":
        results.insert(results.columns.get_loc("is_fault") + 1, "threshold", meta["threshold"])
        results.insert(results.columns.get_loc("threshold") + 1, "model", meta["model_version"])
        return Response(results_csv(results), mimetype="text/csv", headers={
            "Content-Disposition": "attachment; filename=sensor_predictions.csv"})
    decider = predictor.get(meta["model"])
    return jsonify(
        model=meta["model"], model_version=meta["model_version"], threshold=meta["threshold"],
        default_threshold=decider.threshold,
        false_alarm_rate=round(decider.false_alarm_rate(meta["threshold"]), 4),
        id_column=table.id_column, n_rows=len(results), n_flagged=flagged,
        imputed_cells=int(results["imputed_cells"].sum()), predictions=results_to_records(results))
