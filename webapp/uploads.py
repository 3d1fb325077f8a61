"""Generic upload checks, done in memory before anything large is built.

Files are never written to disk under a user-chosen name and never unpickled. Each check
raises :class:`InputError` naming the file and what is wrong (400, 413 or 415). A table
upload is read once in blocks (:func:`scan_upload`) for its sha256 and line count, so the
row limit is checked before any parser runs; the stream is then parsed in chunks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from pipelines.core.problems import LimitError, SchemaError
from webapp.errors import InputError

CSV_EXTENSIONS = (".csv", ".txt", ".tsv")
SPREADSHEET_EXTENSIONS = (".xlsx",)
BINARY_SIGNATURES = (b"\x89PNG", b"PK\x03\x04", b"%PDF", b"\xff\xd8", b"\x1f\x8b")
BLOCK = 1024 * 1024
MAX_PROBLEMS = 50  # problems listed in one error response; the message counts the rest


@dataclass(frozen=True)
class UploadFacts:
    """What one read of an upload found: its name, size, sha256 and number of line breaks."""

    filename: str
    size: int
    sha256: str
    lines: int
    head: bytes
    ends_with_newline: bool = True

    @property
    def rows(self) -> int:
        """Data rows of a text table at most (lines after the header; blank lines counted)."""
        return self.lines - 1 if self.ends_with_newline else self.lines

    @property
    def is_spreadsheet(self) -> bool:
        return self.filename.lower().endswith(SPREADSHEET_EXTENSIONS)


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


def scan_upload(storage: FileStorage) -> UploadFacts:
    """Read the upload once in blocks: size, sha256, line breaks; the stream is rewound."""
    stream = storage.stream
    digest, size, lines, head, last = hashlib.sha256(), 0, 0, b"", b"\n"
    while block := stream.read(BLOCK):
        if not head:
            head = block[:64 * 1024]
        digest.update(block)
        size += len(block)
        lines += block.count(b"\n")
        last = block[-1:]
    stream.seek(0)
    return UploadFacts(storage.filename, size, digest.hexdigest(), lines, head, last == b"\n")


def check_table_upload(facts: UploadFacts) -> None:
    """Reject empty files (400), and files that are neither CSV text nor .xlsx (415)."""
    name = facts.filename
    if not facts.head.strip():
        raise InputError(f"{name}: the file is empty")
    if facts.is_spreadsheet:
        if not facts.head.startswith(b"PK\x03\x04"):
            raise InputError(f"{name}: not an Excel .xlsx workbook; save it as .xlsx or CSV",
                             code=415)
        return
    if looks_binary(facts.head) or not name.lower().endswith(CSV_EXTENSIONS):
        raise InputError(f"{name}: not a CSV file; upload a .csv (comma, semicolon or tab "
                         f"separated, with a header row) or an .xlsx workbook", code=415)
    limit = current_app.config["MAX_ROWS"]
    if facts.rows > limit:
        raise InputError(f"{name}: {facts.rows} rows is more than the {limit} row limit; "
                         f"split the file", code=413)


def check_row_limit(n_rows: int, source: str) -> None:
    """A 413 when a request holds more rows than ``MAX_ROWS``."""
    limit = current_app.config["MAX_ROWS"]
    if n_rows > limit:
        raise InputError(f"{source}: {n_rows} rows is more than the {limit} row limit; "
                         f"split the file", code=413)


def schema_error(exc: SchemaError) -> InputError:
    """A short 400 (413 for a limit) carrying the located problems, at most ``MAX_PROBLEMS``."""
    problems = [p.to_dict() for p in exc.problems]
    message = problems[0]["message"] if problems else "invalid input"
    first = exc.problems[0].text() if exc.problems else message
    headline = first if len(first) <= 240 else first[:237] + "..."
    if len(problems) > 1:
        headline += f" (and {len(problems) - 1} more)"
    if problems and not ({"row", "column", "path"} & set(problems[0])):
        problems = problems[1:]  # the headline says it; listing it again shows it twice
    return InputError(headline, problems[:MAX_PROBLEMS], code=413 if isinstance(exc, LimitError)
                      else None)
