"""Reading a sensor predict request: a CSV upload or JSON instances, and the options."""
from __future__ import annotations

from flask import Request

from pipelines.core.problems import SchemaError
from pipelines.sensor.ingest.table import SensorTable, read_sensor_csv, table_from_instances
from webapp.errors import InputError
from webapp.params import parse_model, parse_threshold
from webapp.uploads import check_csv_bytes, check_row_limit, schema_error, uploaded_file


def read_sensor_upload(data: bytes, filename: str) -> SensorTable:
    """Parse uploaded sensor CSV bytes, or raise InputError listing every problem."""
    check_csv_bytes(data, filename)
    try:
        table = read_sensor_csv(data, file=filename)
    except SchemaError as exc:
        raise schema_error(exc) from None
    check_row_limit(len(table), filename)
    return table


def sensor_request(request: Request) -> tuple[SensorTable, float | None, str | None, str]:
    """Read a sensor predict request: a CSV upload or JSON instances; options from either.

    Returns ``(table, threshold, model, source)``.
    """
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
            table = table_from_instances(body["instances"], body.get("ids"))
        except SchemaError as exc:
            raise schema_error(exc) from None
        check_row_limit(len(table), "instances")
        options, source = body, "json"
    model = parse_model(options.get("model") or request.args.get("model"))
    threshold = parse_threshold(options.get("threshold", request.args.get("threshold")))
    return table, threshold, model, source
