"""Reading a sensor predict request: a CSV/.xlsx upload or JSON instances, and the options.

Uploads are scanned once (sha256, line count: the row limit is checked before parsing), then
parsed lazily in chunks of rows, so a large file is never held whole. JSON bodies are parsed
and their envelope validated with pydantic before the matrix is built.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterator

import pandas as pd
from flask import Request, current_app
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from pipelines.core.problems import SchemaError
from pipelines.sensor.ingest.instances import table_from_instances
from pipelines.sensor.ingest.table import (CHUNK_ROWS, Detected, SensorTable,
                                           open_sensor_file)
from webapp.errors import InputError
from webapp.params import (parse_count, parse_model, parse_threshold, read_json,
                           validate_envelope)
from webapp.errors import schema_error
from webapp.uploads import check_table_upload, scan_upload, uploaded_file


class SensorPredictBody(BaseModel):
    """The JSON body of ``POST /api/v1/sensor/predict``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    instances: Annotated[list[Any], Field(min_length=1)]
    ids: list[StrictStr | StrictInt] | None = None
    model: Annotated[StrictStr, Field(max_length=100)] | None = None
    threshold: Annotated[float, Field(allow_inf_nan=False)] | None = None


class SensorPredictForm(BaseModel):
    """The multipart form of ``POST /api/v1/sensor/predict`` (read by :func:`sensor_request`)."""

    file: bytes = Field(description="a CSV (comma, semicolon or tab; . or , decimals) or .xlsx")
    model: str | None = Field(None, description="a model name; the module's default if absent")
    threshold: str | None = Field(None, description="a number: flag rows scoring at or above it")
    edited_cells: str | None = Field(None, description="cells edited on the page (recorded)")
    removed_rows: str | None = Field(None, description="rows removed on the page (recorded)")
    source_name: str | None = Field(None, description="the original file name, for History")


@dataclass
class SensorRequest:
    """A parsed predict request: rows in chunks, what was detected, the options."""

    source: str  # file name, or "json"
    id_name: str  # what results call the id column
    chunks: Iterator[SensorTable]
    detected: Detected
    label_column: str | None = None
    sha256: str | None = None
    threshold: float | None = None
    model: str | None = None
    edited_cells: int | None = None
    removed_rows: int | None = None
    warnings: list[str] = field(default_factory=list)


def dialect_note(detected: Detected) -> str:
    """How a file was read, when that is not plain comma CSV: worth saying in an error."""
    how = detected.how()
    return f" (read as {how})" if how else ""


def _located(exc: SchemaError, detected: Detected) -> InputError:
    error = schema_error(exc)
    note = dialect_note(detected)
    if note and len(error.description) + len(note) < 300:
        error.description += note
    return error


def _guarded(chunks: Iterator[SensorTable], detected: Detected) -> Iterator[SensorTable]:
    """Chunks whose SchemaError (bad cells found while reading) becomes a located 400/413."""
    try:
        yield from chunks
    except SchemaError as exc:
        raise _located(exc, detected) from None


def file_warnings(detected: Detected, ids: pd.Series) -> list[str]:
    """What a user should know about an accepted file: repeated ids, numbered rows."""
    out = []
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        examples = ", ".join(map(str, pd.unique(repeated)[:3]))
        out.append(f"{repeated.nunique()} ids appear more than once (e.g. {examples}); every "
                   f"row was kept, so check for duplicated wafers.")
    if detected.numbered_ids and detected.format != "json":
        out.append("The file has no wafer id column, so rows are numbered 1, 2, ... in file "
                   "order; add a first column named 'Wafer' to keep your own ids.")
    return out


def open_sensor_upload(request: Request) -> SensorRequest:
    """The uploaded file, checked and opened for chunked reading (nothing parsed yet)."""
    storage = uploaded_file(request, what="a CSV or .xlsx file")
    facts = scan_upload(storage)
    check_table_upload(facts)
    opened = open_sensor_file(storage.stream, storage.filename, chunk_rows=CHUNK_ROWS,
                              max_rows=current_app.config["MAX_ROWS"])
    return SensorRequest(storage.filename, opened.layout.id_name,
                         _guarded(opened.chunks, opened.detected),
                         opened.detected, opened.layout.label_column, facts.sha256)


def _split(table: SensorTable, size: int) -> Iterator[SensorTable]:
    for start in range(0, len(table), size):
        stop = start + size
        yield SensorTable(ids=table.ids[start:stop], values=table.values[start:stop],
                          id_column=table.id_column, layout=table.layout, first_row=start + 1)


def sensor_request(request: Request) -> SensorRequest:
    """Read a sensor predict request: a file upload or JSON instances; options from either."""
    if request.files or (request.mimetype or "").startswith("multipart/"):
        req = open_sensor_upload(request)
        form = request.form
        req.model = parse_model(form.get("model") or request.args.get("model"))
        req.threshold = parse_threshold(form.get("threshold", request.args.get("threshold")))
        req.edited_cells = parse_count(form.get("edited_cells"), "edited_cells")
        req.removed_rows = parse_count(form.get("removed_rows"), "removed_rows")
        name = form.get("source_name", "").strip()
        if name:  # the page sends its (edited) table as <name>.csv; History shows the original
            req.source = name[:200]
        return req
    body = read_json(request)
    if isinstance(body, list):
        body = {"instances": body}
    if not isinstance(body, dict):
        raise InputError("the JSON body must be an object with 'instances': a list of rows")
    envelope = validate_envelope(SensorPredictBody, body)
    table = table_from_instances(envelope.instances, envelope.ids, source=None,
                                 max_rows=current_app.config["MAX_ROWS"])
    detected = Detected(format="json", layout="json", numbered_ids=envelope.ids is None)
    model = parse_model(envelope.model or request.args.get("model"))
    threshold = envelope.threshold if envelope.threshold is not None \
        else parse_threshold(request.args.get("threshold"))
    return SensorRequest("json", "id", _split(table, CHUNK_ROWS), detected,
                         sha256=hashlib.sha256(request.get_data(cache=True)).hexdigest(),
                         threshold=threshold, model=model)
