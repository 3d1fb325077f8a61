"""The web app's downloads: results CSV responses, chunked CSVs for the run record, and
long JSON answers written page by page.

Every CSV goes through the one formula-safe writer, :mod:`pipelines.core.csvout` (re-exported
here): a text cell that starts with ``= + - @``, a tab or a carriage return, or holds one after
a line break, gets a leading ``'``; numbers are left alone; a cell with a CR is quoted.
"""
from __future__ import annotations

import json
import zlib
from typing import Iterable, Iterator

import pandas as pd
from flask import Request, Response

from pipelines.core.csvout import (FLAGGED, FORMULA_TRIGGERS, csv_bytes,  # noqa: F401
                                   neutralise, safe_frame, with_flagged)


class ChunkedCsv:
    """A results CSV written piece by piece as chunks are scored (header once), and gzipped
    as it goes for the run record, so no pass over the whole file is left for the end."""

    def __init__(self, float_decimals: int | None = None, gzip_level: int = 1):
        self.float_decimals = float_decimals
        self._parts: list[bytes] = []
        self._gzip_parts: list[bytes] = []
        self._compressor = zlib.compressobj(gzip_level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def add(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (same columns as the first piece)."""
        data = csv_bytes(frame, self.float_decimals, header=not self._parts)
        self._parts.append(data)
        self._gzip_parts.append(self._compressor.compress(data))

    def data(self) -> bytes:
        """The whole CSV."""
        return b"".join(self._parts)

    def gzipped(self) -> bytes:
        """The whole CSV as one gzip stream (call once, after the last piece)."""
        self._gzip_parts.append(self._compressor.flush())
        return b"".join(self._gzip_parts)


def csv_response(frame: pd.DataFrame, filename: str, float_decimals: int | None = 6) -> Response:
    """A download of ``frame`` as ``filename`` (every row, formula-safe)."""
    return csv_download(csv_bytes(frame, float_decimals), filename)


def csv_download(data: bytes, filename: str) -> Response:
    """CSV bytes already written by :func:`csv_bytes`, as a download named ``filename``."""
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename={filename}"})


def wants_csv(request: Request) -> bool:
    """A predict request asks for the results CSV (``?format=csv`` or ``Accept: text/csv``)."""
    return request.args.get("format") == "csv" or request.accept_mimetypes.best == "text/csv"


def json_stream(head: dict, key: str, pages: Iterable[list[dict]]) -> Response:
    """A JSON object ``head`` plus ``key``: a long list, written page by page.

    The list is never serialised whole, so a 100,000-row answer costs one page of memory.
    """
    def generate() -> Iterator[str]:
        opening = json.dumps(head, allow_nan=False)[:-1]
        yield opening + (", " if head else "") + json.dumps(key) + ": ["
        first = True
        for page in pages:
            body = json.dumps(page, allow_nan=False)[1:-1]
            if body:
                yield ("" if first else ", ") + body
                first = False
        yield "]}"
    return Response(generate(), mimetype="application/json")
