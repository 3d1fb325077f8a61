"""Generic upload checks, done in memory before anything large is built.

Files are never written to disk under a user-chosen name and never unpickled. Each check
raises :class:`InputError` naming the file and what is wrong (400, 413 or 415).
"""
from __future__ import annotations

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from pipelines.core.problems import SchemaError
from webapp.errors import InputError

CSV_EXTENSIONS = (".csv", ".txt")
BINARY_SIGNATURES = (b"\x89PNG", b"PK\x03\x04", b"%PDF", b"\xff\xd8", b"\x1f\x8b")


def looks_binary(data: bytes) -> bool:
    """True for bytes that are clearly not text (NUL bytes or a known binary signature)."""
    head = data[:4096]
    return b"\x00" in head or head.startswith(BINARY_SIGNATURES)


def uploaded_file(req: Request, field: str = "file", what: str = "a CSV") -> FileStorage:
    """The uploaded file in ``field``; a 400 when none was sent."""
    storage = req.files.get(field)
    if storage is None or not storage.filename:
        raise InputError(f"no file was uploaded: send {what} in the form field '{field}'")
    return storage


def check_csv_bytes(data: bytes, filename: str) -> None:
    """Reject empty files (400) and files that are not CSV text (415)."""
    if not data.strip():
        raise InputError(f"{filename}: the file is empty")
    if looks_binary(data) or not filename.lower().endswith(CSV_EXTENSIONS):
        raise InputError(f"{filename}: not a CSV file; upload a comma-separated .csv "
                         f"with a header row", code=415)


def check_row_limit(n_rows: int, source: str) -> None:
    """A 413 when a request holds more rows than ``MAX_ROWS``."""
    limit = current_app.config["MAX_ROWS"]
    if n_rows > limit:
        raise InputError(f"{source}: {n_rows} rows is more than the {limit} row limit; "
                         f"split the file", code=413)


def schema_error(exc: SchemaError) -> InputError:
    """A 400 carrying every located problem of a :class:`SchemaError`."""
    return InputError(str(exc), [p.to_dict() for p in exc.problems])
