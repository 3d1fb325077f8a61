"""Read and check uploaded files in memory; raise :class:`InputError` naming what is wrong.

Files are never written to disk under a user-chosen name and never unpickled.
"""
from __future__ import annotations

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from pipelines.ingest.sensor_csv import SensorTable, read_sensor_csv
from pipelines.schema import SchemaError
from webapp.errors import InputError


def _looks_binary(data: bytes) -> bool:
    head = data[:4096]
    return b"\x00" in head or head.startswith((b"\x89PNG", b"PK\x03\x04", b"%PDF", b"\xff\xd8",
                                               b"\x1f\x8b"))


def uploaded_file(req: Request, field: str = "file") -> FileStorage:
    """The uploaded file in ``field``; a 400 when none was sent."""
    storage = req.files.get(field)
    if storage is None or not storage.filename:
        raise InputError(f"no file was uploaded: send a CSV in the form field '{field}'")
    return storage


def check_csv_bytes(data: bytes, filename: str) -> None:
    """Reject empty files (400) and files that are not CSV text (415)."""
    if not data.strip():
        raise InputError(f"{filename}: the file is empty")
    if _looks_binary(data) or not filename.lower().endswith((".csv", ".txt")):
        raise InputError(f"{filename}: not a CSV file; upload a comma-separated .csv "
                         f"with a header row", code=415)


def read_sensor_upload(data: bytes, filename: str) -> SensorTable:
    """Parse uploaded sensor CSV bytes, or raise InputError listing every problem."""
    check_csv_bytes(data, filename)
    try:
        table = read_sensor_csv(data, file=filename)
    except SchemaError as exc:
        raise InputError(str(exc), [p.to_dict() for p in exc.problems]) from None
    return check_row_limit(table, filename)


def check_row_limit(table: SensorTable, source: str) -> SensorTable:
    """A 413 when a request holds more rows than ``MAX_ROWS``."""
    limit = current_app.config["MAX_ROWS"]
    if len(table) > limit:
        raise InputError(f"{source}: {len(table)} rows is more than the {limit} row limit; "
                         f"split the file", code=413)
    return table
